import { describe, expect, it } from 'vitest';
import { parseCopySpec, parseEnv, setupFromFlags } from '../../../src/cli/run.js';

describe('options', () => {
  it('CLI copy specs split at the last colon; env pairs need a name', () => {
    expect(parseCopySpec('./a:b:/work', '--push')).toEqual({ source: './a:b', dest: '/work' });
    expect(() => parseCopySpec('nodest', '--push')).toThrow(/SRC:DEST/);
    expect(parseEnv(['A=1', 'B=x=y'])).toEqual({ A: '1', B: 'x=y' });
    expect(() => parseEnv(['=1'])).toThrow(/NAME=VALUE/);
  });
});

describe('setupFromFlags', () => {
  it("--setup with its pushes becomes boot()'s setup; none gives none", () => {
    expect(setupFromFlags('make deps', ['./vendor:/opt/vendor', 'c:\\x:/y'])).toEqual({ run: 'make deps', push: { './vendor': '/opt/vendor', 'c:\\x': '/y' } });
    expect(setupFromFlags('make deps', [])).toEqual({ run: 'make deps' });
    expect(setupFromFlags(undefined, [])).toBeUndefined();
  });

  it('--setup-push without --setup, or a push without a colon, is INVALID_OPTION', () => {
    expect(() => setupFromFlags(undefined, ['a:/b'])).toThrowError(expect.objectContaining({ code: 'INVALID_OPTION', message: expect.stringMatching(/--setup-push needs --setup/) }));
    expect(() => setupFromFlags('x', ['nocolon'])).toThrowError(expect.objectContaining({ code: 'INVALID_OPTION', message: expect.stringMatching(/--setup-push as SRC:DEST/) }));
  });
});
