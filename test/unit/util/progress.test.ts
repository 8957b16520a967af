import { describe, expect, it } from 'vitest';
import { createProgress } from '../../../src/util/progress.js';
import { HOSTILE, runsCommand } from '../fixtures/hostile.js';

describe('reports of hostile guest text', () => {
  it('progress lines (console lines, hello fields) are one sanitized line', () => {
    let out = '';
    const stream = {
      write: (t: string) => {
        out += t;
        return true;
      },
      isTTY: false,
    } as unknown as NodeJS.WriteStream;
    const progress = createProgress('boot debian-12', stream, 0);
    progress.phase('booting');
    progress.update(`${HOSTILE.indented}${HOSTILE.title}\n##[group]x`);
    progress.done(`${HOSTILE.bidi} up, kernel ${HOSTILE.clear}6.1\n::error::k`);
    expect(out).not.toMatch(/[\x1b\x07\u202e]/);
    expect(runsCommand(out)).toBe(false);
    expect(out.trimEnd().split('\n')).toHaveLength(3);
  });
});
