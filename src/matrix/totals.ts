import type { CellResult, MatrixReport, ReportTotals } from './types.js';

/** Counts cells by status and parsed test cases by status. */
export function computeTotals(cells: readonly CellResult[]): ReportTotals {
  const totals: ReportTotals = {
    cells: cells.length,
    passed: 0,
    failed: 0,
    error: 0,
    timeout: 0,
    flaky: 0,
    skipped: 0,
    cases: { total: 0, passed: 0, failed: 0, error: 0, skipped: 0 },
  };
  for (const cell of cells) {
    totals[cell.status] += 1;
    for (const testCase of cell.cases) {
      totals.cases.total += 1;
      totals.cases[testCase.status] += 1;
    }
  }
  return totals;
}

/**
 * True when no cell failed, errored or timed out. Flaky cells count as ok; skipped cells only occur
 * under fail-fast after a failure (so ok is already false) or were never meant to run here.
 */
export function isOk(totals: ReportTotals): boolean {
  return totals.failed + totals.error + totals.timeout === 0;
}

/** A report from its cells and run facts: the one place totals and ok are derived (runMatrix and mergeReports both build here). */
export function buildReport(fields: Omit<MatrixReport, 'kind' | 'version' | 'totals' | 'ok'>): MatrixReport {
  const totals = computeTotals(fields.cells);
  return {
    kind: 'kvmtest-matrix-report',
    version: 1,
    matrixKey: fields.matrixKey,
    allCellIds: fields.allCellIds,
    shards: fields.shards,
    startedAt: fields.startedAt,
    durationMs: fields.durationMs,
    host: fields.host,
    cells: fields.cells,
    totals,
    ok: isOk(totals),
  };
}
