import { describe, expect, it } from 'vitest';
import { createProgress } from '../../../src/util/progress.js';
import { captureStream } from '../fixtures/capture-stream.js';
import { HOSTILE, runsCommand } from '../fixtures/hostile.js';

describe('reports of hostile guest text', () => {
  it('progress lines (console lines, hello fields) are one sanitized line', () => {
    const { stream, written } = captureStream();
    const progress = createProgress('boot debian-12', stream, 0);
    progress.phase('booting');
    progress.update(`${HOSTILE.indented}${HOSTILE.title}\n##[group]x`);
    progress.done(`${HOSTILE.bidi} up, kernel ${HOSTILE.clear}6.1\n::error::k`);
    const out = written();
    expect(out).not.toMatch(/[\x1b\x07\u202e]/);
    expect(runsCommand(out)).toBe(false);
    expect(out.trimEnd().split('\n')).toHaveLength(3);
  });
});

describe('the label', () => {
  it('is sanitized too: a capsule names its base, and a base name is not trusted text', () => {
    const { stream, written } = captureStream();
    const progress = createProgress(`boot ${HOSTILE.title}\n::error::owned\x1b]52;c;ZXZpbA==\x07`, stream, 0);
    progress.phase('restoring');
    progress.done('up');
    const out = written();
    expect(out).not.toMatch(/[\x1b\x07]/);
    expect(runsCommand(out)).toBe(false);
    expect(out.trimEnd().split('\n')).toHaveLength(2);
  });
});
