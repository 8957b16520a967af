import { describe, expect, it } from 'vitest';
import { buildReport, computeTotals, isOk } from '../../../src/matrix/totals.js';
import type { CellResult, CellStatus } from '../../../src/matrix/types.js';
import type { TestCase } from '../../../src/results/types.js';
import { debian12, fedora41, full } from '../fixtures/sample-run.js';

const cell = (id: string, status: CellStatus, cases: CellResult['cases'] = []): CellResult => ({
  id,
  image: id,
  axes: {},
  status,
  exitCode: status === 'passed' ? 0 : 1,
  durations: { total: 1 },
  attempts: [],
  stdoutTail: '',
  stderrTail: '',
  cases,
});
const facts = {
  matrixKey: 'k',
  allCellIds: ['a', 'b'],
  shards: ['1/1'],
  startedAt: '2026-01-01T00:00:00.000Z',
  durationMs: 5,
  host: { hostname: 'h', accel: 'tcg', cpus: 2, memoryMiB: 4096, node: 'v20' },
};

describe('buildReport', () => {
  it('derives totals and ok from the cells: the one place runMatrix and mergeReports build a report', () => {
    const report = buildReport({ ...facts, cells: [cell('a', 'passed', [{ name: 'n', suite: '', status: 'passed', file: 'f' }]), cell('b', 'flaky')] });
    expect(report).toMatchObject({ kind: 'kvmtest-matrix-report', version: 1, ...facts, ok: true });
    expect(report.totals).toEqual({ cells: 2, passed: 1, failed: 0, error: 0, timeout: 0, flaky: 1, skipped: 0, cases: { total: 1, passed: 1, failed: 0, error: 0, skipped: 0 } });
    expect(buildReport({ ...facts, cells: [cell('a', 'passed'), cell('b', 'timeout')] }).ok).toBe(false);
  });
});

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

describe('case totals (computeTotals)', () => {
  it('counts by status', () => {
    const c = (status: TestCase['status']): TestCase => ({ name: 'n', suite: '', status, file: 'f' });
    const cases = (list: TestCase[]) => computeTotals([{ status: 'passed', cases: list } as CellResult]).cases;
    expect(cases([c('passed'), c('passed'), c('failed'), c('error'), c('skipped')])).toEqual({ total: 5, passed: 2, failed: 1, error: 1, skipped: 1 });
    expect(cases([])).toEqual({ total: 0, passed: 0, failed: 0, error: 0, skipped: 0 });
  });
});
