import { describe, expect, it } from 'vitest';
import { computeTotals, isOk } from '../../../src/report/totals.js';
import { debian11, debian12, debian13, fedora41, report } from '../fixtures/sample-run.js';

const full = report([debian11, debian12, debian13, fedora41]);

describe('computeTotals / isOk', () => {
  it('counts cells and cases by status', () => {
    expect(full.totals).toEqual({
      cells: 4,
      passed: 1,
      failed: 1,
      error: 1,
      timeout: 0,
      flaky: 1,
      skipped: 0,
      cases: { total: 5, passed: 3, failed: 1, error: 0, skipped: 1 },
    });
    expect(isOk(full.totals)).toBe(false);
  });

  it('treats flaky as ok and failures, errors and timeouts as not', () => {
    expect(isOk(computeTotals([debian12, fedora41]))).toBe(true);
    expect(isOk(computeTotals([{ ...debian12, status: 'timeout' }]))).toBe(false);
    expect(isOk(computeTotals([]))).toBe(true);
  });
});
