import type { CellResult, CellStatus, MatrixReport, TestCase } from '../matrix/types.js';
import { sanitize, sanitizeLine } from '../util/sanitize.js';

/** 0.4s, 41.2s, 2m03s, 1h05m; '-' when unknown. */
export function formatDuration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms) || ms < 0) return '-';
  const tenths = Math.round(ms / 100);
  if (tenths < 600) return `${(tenths / 10).toFixed(1)}s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, '0')}s`;
  const minutes = Math.round(ms / 60_000);
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

export const STATUS_MARK: Record<CellStatus, string> = {
  passed: '✔',
  failed: '✖',
  error: '✖',
  timeout: '✖',
  flaky: '⚠',
  skipped: '○',
};

const ANSI = { red: 31, green: 32, yellow: 33, gray: 90, bold: 1 } as const;
const STATUS_COLOR: Record<CellStatus, keyof typeof ANSI> = {
  passed: 'green',
  failed: 'red',
  error: 'red',
  timeout: 'red',
  flaky: 'yellow',
  skipped: 'gray',
};

export function paint(text: string, color: keyof typeof ANSI, enabled: boolean): string {
  return enabled ? `\x1b[${ANSI[color]}m${text}\x1b[0m` : text;
}

export function paintStatus(text: string, status: CellStatus, enabled: boolean): string {
  return paint(text, STATUS_COLOR[status], enabled);
}

/** Guest text, multi-line: escape sequences, control characters (but tab and newlines) and workflow commands removed. */
export function plainText(text: string): string {
  return sanitize(text, { multiline: true });
}

/** One readable line of guest text: sanitized, whitespace runs (newlines too) collapsed. */
export const oneLine = sanitizeLine;

/** `exit code 1`, `signal SIGKILL`, `BOOT_TIMEOUT: ...`: why a cell did not pass, in one line. */
export function cellProblem(cell: CellResult): string {
  if (cell.error) return oneLine(`${cell.error.code}: ${cell.error.message}`);
  if (cell.exitCode !== null) return `exit code ${cell.exitCode}`;
  if (cell.signal) return `killed by ${cell.signal}`;
  return cell.status;
}

export function isBadCell(cell: CellResult): boolean {
  return cell.status === 'failed' || cell.status === 'error' || cell.status === 'timeout';
}

export function isBadCase(testCase: TestCase): boolean {
  return testCase.status === 'failed' || testCase.status === 'error';
}

/** `3/4 passed`, `3/4 passed, 1 skipped`, or '-' without parsed cases. */
export function casesSummary(cell: CellResult): string {
  if (cell.cases.length === 0) return '-';
  const passed = cell.cases.filter((c) => c.status === 'passed').length;
  const skipped = cell.cases.filter((c) => c.status === 'skipped').length;
  const ran = cell.cases.length - skipped;
  return `${passed}/${ran} passed${skipped ? `, ${skipped} skipped` : ''}`;
}

/** Totals in words: `5 cells: 2 passed, 1 failed · 7 tests: 5 passed, 2 failed · 3m12s`. */
export function totalsLine(report: MatrixReport): string {
  const t = report.totals;
  const count = (n: number, word: string) => (n > 0 ? [`${n} ${word}`] : []);
  const cells = [`${t.passed} passed`, ...count(t.failed, 'failed'), ...count(t.error, 'error'), ...count(t.timeout, 'timed out'), ...count(t.flaky, 'flaky'), ...count(t.skipped, 'skipped')];
  const parts = [`${t.cells} ${t.cells === 1 ? 'cell' : 'cells'}: ${cells.join(', ')}`];
  if (t.cases.total > 0) {
    const cases = [`${t.cases.passed} passed`, ...count(t.cases.failed, 'failed'), ...count(t.cases.error, 'error'), ...count(t.cases.skipped, 'skipped')];
    parts.push(`${t.cases.total} ${t.cases.total === 1 ? 'test' : 'tests'}: ${cases.join(', ')}`);
  }
  parts.push(formatDuration(report.durationMs));
  return parts.join(' · ');
}

const COLUMNS = ['STATUS', 'CELL', 'OS', 'EXIT', 'TESTS', 'BOOT', 'RUN', 'TOTAL'] as const;
const RIGHT_ALIGNED = new Set<string>(['EXIT', 'BOOT', 'RUN', 'TOTAL']);

/** The aligned table printed at the end of a terminal run, then totals and every failed case. */
export function summaryTable(report: MatrixReport, options: { color: boolean }): string {
  const color = options.color;
  const rows = report.cells.map((cell) => [
    `${STATUS_MARK[cell.status]} ${cell.status}`,
    cell.id,
    cell.guest?.os ? oneLine(cell.guest.os, 40) : '-',
    cell.exitCode !== null ? String(cell.exitCode) : (cell.signal ?? '-'),
    casesSummary(cell),
    formatDuration(cell.durations.boot),
    formatDuration(cell.durations.run),
    formatDuration(cell.durations.total),
  ]);
  const widths = COLUMNS.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  const align = (text: string, i: number) => (RIGHT_ALIGNED.has(COLUMNS[i]!) ? text.padStart(widths[i]!) : text.padEnd(widths[i]!));
  const lines = [paint(COLUMNS.map(align).join('  ').trimEnd(), 'bold', color)];
  report.cells.forEach((cell, r) => {
    const cells = rows[r]!.map(align);
    cells[0] = paintStatus(cells[0]!, cell.status, color);
    lines.push(cells.join('  ').trimEnd());
  });
  lines.push('', paint(totalsLine(report), report.ok ? 'green' : 'red', color));

  const problems: string[] = [];
  const cross = paint('✖', 'red', color);
  for (const cell of report.cells) {
    const badCases = cell.cases.filter(isBadCase);
    for (const testCase of badCases) {
      const path = oneLine([cell.id, ...(testCase.suite ? [testCase.suite] : []), testCase.name].join(' › '));
      const message = oneLine(testCase.message ?? testCase.details ?? testCase.status);
      problems.push(`${cross} ${path}: ${message}`);
    }
    // a cell can fail or error beyond its cases (boot failure, crash after the last case, no cases at all)
    if (isBadCell(cell) && (badCases.length === 0 || cell.status !== 'failed')) {
      problems.push(`${cross} ${cell.id}: ${cellProblem(cell)}`);
    }
  }
  if (problems.length > 0) lines.push('', ...problems);
  return `${lines.join('\n')}\n`;
}
