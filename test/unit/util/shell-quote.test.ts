import { describe, expect, it } from 'vitest';
import { shellPath, shellQuote } from '../../../src/util/shell-quote.js';

describe('shell words for commands a user copies', () => {
  it('leaves plainly safe words as they are', () => {
    for (const word of ['cells/debian-12_mode=fail/capsule', '/out/cells/x', 'a.b', '@x', '+1', '%y', 'a-b']) expect(shellQuote(word)).toBe(word);
  });

  it('quotes every other word: spaces, quotes, globs, a leading - or = (zsh expands =cmd), the empty word', () => {
    const quoted = Object.fromEntries(['-rf', '--cold', '=ls', 'a b', "it's", '*', '~', ''].map((word) => [word, shellQuote(word)]));
    expect(quoted).toEqual({ '-rf': "'-rf'", '--cold': "'--cold'", '=ls': "'=ls'", 'a b': "'a b'", "it's": "'it'\\''s'", '*': "'*'", '~': "'~'", '': "''" });
  });

  it('a path starting with - gets ./ in front, so no command takes it for an option (quotes alone do not: the shell removes them)', () => {
    const shown = Object.fromEntries(['-rf', '--cold/capsule', '-a b', '/out/-x', 'cells/x'].map((path) => [path, shellPath(path)]));
    expect(shown).toEqual({ '-rf': './-rf', '--cold/capsule': './--cold/capsule', '-a b': "'./-a b'", '/out/-x': '/out/-x', 'cells/x': 'cells/x' });
  });
});
