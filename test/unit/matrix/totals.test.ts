import { describe, expect, it } from 'vitest';
import { buildReport } from '../../../src/matrix/totals.js';
import type { CellResult, CellStatus } from '../../../src/matrix/types.js';

const cell = (id: string, status: CellStatus, cases: CellResult['cases'] = []): CellResult => ({
  id, image: id, axes: {}, status, exitCode: status === 'passed' ? 0 : 1, durations: { total: 1 }, attempts: [], stdoutTail: '', stderrTail: '', cases,
});
const facts = { matrixKey: 'k', allCellIds: ['a', 'b'], shards: ['1/1'], startedAt: '2026-01-01T00:00:00.000Z', durationMs: 5, host: { hostname: 'h', accel: 'tcg', cpus: 2, memoryMiB: 4096, node: 'v20' } };

describe('buildReport', () => {
  it('derives totals and ok from the cells: the one place runMatrix and mergeReports build a report', () => {
    const report = buildReport({ ...facts, cells: [cell('a', 'passed', [{ name: 'n', suite: '', status: 'passed', file: 'f' }]), cell('b', 'flaky')] });
    expect(report).toMatchObject({ kind: 'kvmtest-matrix-report', version: 1, ...facts, ok: true });
    expect(report.totals).toEqual({ cells: 2, passed: 1, failed: 0, error: 0, timeout: 0, flaky: 1, skipped: 0, cases: { total: 1, passed: 1, failed: 0, error: 0, skipped: 0 } });
    expect(buildReport({ ...facts, cells: [cell('a', 'passed'), cell('b', 'timeout')] }).ok).toBe(false);
  });
});
