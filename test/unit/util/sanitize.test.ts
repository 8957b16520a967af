import { describe, expect, it } from 'vitest';
import { sanitize, sanitizeLine } from '../../../src/util/sanitize.js';
import { HOSTILE, runsCommand } from '../fixtures/hostile.js';

describe('sanitize', () => {
  it('removes OSC (window title, hyperlinks), CSI, DCS and C1 sequences, keeping the visible text', () => {
    expect(sanitize(`a${HOSTILE.title}b`)).toBe('ab');
    expect(sanitize(`a${HOSTILE.clear}b`)).toBe('ab');
    expect(sanitize(HOSTILE.hyperlink)).toBe('click');
    expect(sanitize(`a${HOSTILE.dcs}b`)).toBe('ab');
    expect(sanitize(HOSTILE.c1)).toBe('red');
    expect(sanitize(HOSTILE.unterminated)).toBe('text');
    expect(sanitize('\x00bell\x07 del\x7f esc\x1b')).toBe('bell del esc');
  });

  it('removes bidi overrides and isolates', () => {
    expect(sanitize(HOSTILE.bidi)).toBe('abcdcb');
    expect(sanitize('\u2066x\u2069\u200f')).toBe('x');
  });

  it('a carriage return cannot overwrite a line: it becomes a line break, or a space on one line', () => {
    expect(sanitize(HOSTILE.overwrite, { multiline: true })).toBe('all tests passed\nFAILED ');
    expect(sanitize(HOSTILE.overwrite)).toBe('all tests passed FAILED ');
    expect(sanitize('a\r\nb', { multiline: true })).toBe('a\nb');
    expect(sanitize('a\u2028b\x85c', { multiline: true })).toBe('a\nb\nc');
  });

  it('keeps tabs; keeps newlines only where the caller allows several lines', () => {
    expect(sanitize('a\tb\nc', { multiline: true })).toBe('a\tb\nc');
    expect(sanitize('a\tb\nc')).toBe('a\tb c');
  });

  it('no line can start a workflow command, and ##[ appears nowhere', () => {
    for (const text of [HOSTILE.setEnv, HOSTILE.indented, HOSTILE.group, `x\n${HOSTILE.setEnv}`, `x\r${HOSTILE.indented}`, '\u3000::warning::w', ':::x', '###[y', `${HOSTILE.clear}::error::z`]) {
      expect(runsCommand(sanitize(text, { multiline: true })), JSON.stringify(text)).toBe(false);
      expect(runsCommand(sanitizeLine(text)), JSON.stringify(text)).toBe(false);
    }
    expect(sanitize(HOSTILE.setEnv)).toBe(': :set-env name=X::y');
    expect(sanitize(HOSTILE.indented)).toBe('  : :error::x');
    expect(sanitize(HOSTILE.group)).toBe('ok # #[group]hidden');
  });

  it('leaves ordinary text alone', () => {
    const text = 'ok 1 - parses <tag> & "quotes" :: in the middle, ünïcödé ✔\n\tdetails';
    expect(sanitize(text, { multiline: true })).toBe(text);
  });

  it('is linear on long hostile input', () => {
    const big = `${'\x1b]'.repeat(100_000)}${'\x1b['.repeat(100_000)}${'::'.repeat(100_000)}`;
    expect(sanitize(big).length).toBeLessThan(big.length);
  });
});
