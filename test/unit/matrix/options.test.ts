import { describe, expect, it } from 'vitest';
import { resolveMatrixOptions } from '../../../src/matrix/options.js';

describe('matrix options', () => {
  const base = { images: ['debian-12'], run: ['true'] };

  it('defaults: guest node, auto concurrency, 30 min per cell, no retries, whole matrix', () => {
    expect(resolveMatrixOptions(base)).toEqual({ run: ['true'], node: 'guest', concurrency: 'auto', timeoutMs: 1_800_000, retries: 0, failFast: false, shard: { index: 1, count: 1 } });
  });

  it('rejects each bad option with a code and the option named', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ run: [] }, /"run"/],
      [{ run: '  ' }, /"run"/],
      [{ push: { '.': 'relative' } }, /absolute/],
      [{ push: ['x'] }, /"push"/],
      [{ collect: ['results.xml'] }, /"collect"/],
      [{ node: 'bun' }, /"node"/],
      [{ concurrency: 0 }, /"concurrency"/],
      [{ retries: -1 }, /"retries"/],
      [{ failFast: 'yes' }, /"failFast"/],
      [{ env: { A: 1 } }, /"env"/],
    ];
    for (const [patch, message] of cases) {
      expect(() => resolveMatrixOptions({ ...base, ...patch } as never), JSON.stringify(patch)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringMatching(message) }));
    }
    expect(() => resolveMatrixOptions({ ...base, timeout: 'soon' })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });
});
