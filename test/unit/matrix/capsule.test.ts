import { describe, expect, it } from 'vitest';
import { wantsCapsule } from '../../../src/matrix/capsule.js';

describe('wantsCapsule', () => {
  it('on-failure saves every attempt that did not pass; always saves all; never none', () => {
    const statuses = ['passed', 'failed', 'error', 'timeout'] as const;
    expect(statuses.map((s) => wantsCapsule('on-failure', s))).toEqual([false, true, true, true]);
    expect(statuses.map((s) => wantsCapsule('always', s))).toEqual([true, true, true, true]);
    expect(statuses.map((s) => wantsCapsule('never', s))).toEqual([false, false, false, false]);
  });
});
