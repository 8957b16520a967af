import { readFile } from 'node:fs/promises';
import { kvmtestError } from '../errors.js';
import { parseAxisValue } from '../matrix/grid.js';
import { buildReport } from '../matrix/totals.js';
import type { AxisValue, CaseStatus, CellResult, CellStatus, MatrixReport } from '../matrix/types.js';

const CELL_STATUSES = new Set<CellStatus>(['passed', 'failed', 'error', 'timeout', 'flaky', 'skipped']);
const CASE_STATUSES = new Set<CaseStatus>(['passed', 'failed', 'error', 'skipped']);
/** A case's text fields, each a string when present (`suite` and `file` may be missing from older or hand-made reports). */
const CASE_TEXT = ['suite', 'file', 'message', 'details'] as const;

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** What is wrong with one input, or undefined when it looks like a MatrixReport. */
function problemOf(value: unknown): string | undefined {
  if (!isObject(value)) return `expected a JSON object, got ${Array.isArray(value) ? 'an array' : typeof value}`;
  if (value.kind !== 'kvmtest-matrix-report') return `"kind" is ${JSON.stringify(value.kind)}, expected "kvmtest-matrix-report" (is this a kvmtest JSON report?)`;
  if (value.version !== 1) return `"version" is ${JSON.stringify(value.version)}; this kvmtest reads version 1`;
  if (typeof value.matrixKey !== 'string' || value.matrixKey === '') return '"matrixKey" is missing';
  for (const key of ['allCellIds', 'shards', 'cells'] as const) {
    if (!Array.isArray(value[key])) return `"${key}" is not an array`;
  }
  if (!(value.allCellIds as unknown[]).every((id) => typeof id === 'string')) return '"allCellIds" holds something other than strings';
  if (!(value.shards as unknown[]).every((shard) => typeof shard === 'string')) return '"shards" holds something other than strings';
  if (typeof value.startedAt !== 'string' || Number.isNaN(Date.parse(value.startedAt))) return '"startedAt" is not a date';
  if (typeof value.durationMs !== 'number') return '"durationMs" is not a number';
  if (!isObject(value.host)) return '"host" is missing';
  // a Set: looking each cell up in the array made a check of n cells cost n²
  const ids = new Set(value.allCellIds as string[]);
  for (const [i, cell] of (value.cells as unknown[]).entries()) {
    if (!isObject(cell) || typeof cell.id !== 'string') return `cells[${i}] has no "id"`;
    if (!CELL_STATUSES.has(cell.status as CellStatus)) return `cell ${cell.id} has an unknown status ${JSON.stringify(cell.status)}`;
    if (typeof cell.image !== 'string' || !isObject(cell.axes)) return `cell ${cell.id} lacks its "image" or "axes"`;
    if (!Array.isArray(cell.cases) || !Array.isArray(cell.attempts)) return `cell ${cell.id} lacks its "cases" or "attempts" array`;
    if (cell.collected !== undefined && !(Array.isArray(cell.collected) && cell.collected.every(isObject))) return `cell ${cell.id} has a "collected" that is not a list`;
    if (typeof cell.stdoutTail !== 'string' || typeof cell.stderrTail !== 'string') return `cell ${cell.id} lacks its "stdoutTail" or "stderrTail"`;
    const problem = (cell.cases as unknown[]).map(caseProblem).findIndex((p) => p !== undefined);
    if (problem >= 0) return `cell ${cell.id}: cases[${problem}] ${caseProblem((cell.cases as unknown[])[problem])}`;
    if (!isObject(cell.durations)) return `cell ${cell.id} lacks "durations"`;
    if (cell.consoleLog !== undefined && typeof cell.consoleLog !== 'string') return `cell ${cell.id} has a "consoleLog" that is not a path`;
    const capsule = cell.capsule;
    if (
      capsule !== undefined &&
      !(isObject(capsule) && (typeof capsule.error === 'string' || (typeof capsule.dir === 'string' && typeof capsule.bytes === 'number' && typeof capsule.tookMs === 'number')))
    )
      return `cell ${cell.id} has a "capsule" that is neither { dir, bytes, tookMs } nor { error }`;
    if (!ids.has(cell.id)) return `cell ${cell.id} is not in its own "allCellIds"`;
  }
  return undefined;
}

/** What is wrong with one parsed case of a report, or undefined: a name and a known status; its text fields strings. */
function caseProblem(c: unknown): string | undefined {
  if (!isObject(c)) return 'is not an object';
  if (typeof c.name !== 'string') return 'has no "name"';
  if (!CASE_STATUSES.has(c.status as CaseStatus)) return `has an unknown status ${JSON.stringify(c.status)}`;
  const bad = CASE_TEXT.find((key) => c[key] !== undefined && typeof c[key] !== 'string');
  if (bad) return `has a "${bad}" that is not text`;
  if (c.durationMs !== undefined && typeof c.durationMs !== 'number') return 'has a "durationMs" that is not a number';
  return undefined;
}

/**
 * Image and axes back from a cell id (`debian-12/cpus=2`), for a cell no report describes:
 * trailing `name=value` segments are axes, the rest is the image (which may itself contain '/').
 */
function specFromId(id: string): { image: string; axes: Record<string, AxisValue> } {
  const segments = id.split('/');
  const axes: Record<string, AxisValue> = {};
  let end = segments.length;
  while (end > 1 && /^[^=]+=/.test(segments[end - 1]!)) end -= 1;
  for (const segment of segments.slice(end)) {
    const at = segment.indexOf('=');
    axes[segment.slice(0, at)] = parseAxisValue(segment.slice(at + 1));
  }
  return { image: segments.slice(0, end).join('/'), axes };
}

function missingCell(id: string): CellResult {
  return {
    id,
    ...specFromId(id),
    status: 'error',
    exitCode: null,
    error: { code: 'SHARD_MISSING', message: 'no shard report contains this cell; did a CI job fail before writing its report?' },
    durations: { total: 0 },
    attempts: [],
    stdoutTail: '',
    stderrTail: '',
    cases: [],
  };
}

/**
 * One report from the shard reports of one matrix (`kvmtest merge`). Cells no shard ran become
 * SHARD_MISSING errors, so a CI job that died before writing its report fails the merged run.
 * `labels` (file names) make errors name the input; by default inputs are named by index.
 */
export function mergeReports(inputs: readonly unknown[], labels: readonly string[] = []): MatrixReport {
  const name = (i: number) => `input[${i}]${labels[i] ? ` (${labels[i]})` : ''}`;
  if (inputs.length === 0) throw kvmtestError('REPORT_INVALID', 'No reports to merge: pass the JSON report of every shard');
  const reports = inputs.map((input, i) => {
    const problem = problemOf(input);
    if (problem) throw kvmtestError('REPORT_INVALID', `Cannot merge ${name(i)}: ${problem}`);
    return input as MatrixReport;
  });

  const first = reports[0]!;
  for (const [i, report] of reports.entries()) {
    if (report.matrixKey !== first.matrixKey || report.allCellIds.join('\n') !== first.allCellIds.join('\n')) {
      throw kvmtestError(
        'REPORT_INVALID',
        `Cannot merge ${name(i)} with ${name(0)}: they come from different matrices (matrixKey ${report.matrixKey} vs ${first.matrixKey}); ` +
          'merge only the shard reports of one run, made from the same config and command',
      );
    }
  }

  const byId = new Map<string, { cell: CellResult; from: number }>();
  for (const [i, report] of reports.entries()) {
    for (const cell of report.cells) {
      const seen = byId.get(cell.id);
      if (seen) {
        throw kvmtestError('REPORT_INVALID', `Cannot merge: cell ${cell.id} is in both ${name(seen.from)} and ${name(i)}; shards must not overlap (was one shard's report passed twice?)`);
      }
      byId.set(cell.id, { cell, from: i });
    }
  }

  const cells = first.allCellIds.map((id) => byId.get(id)?.cell ?? missingCell(id));
  const shards = [...new Set(reports.flatMap((report) => report.shards))].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const startedAt = reports.reduce((earliest, report) => (Date.parse(report.startedAt) < Date.parse(earliest.startedAt) ? report : earliest)).startedAt;
  return buildReport({
    matrixKey: first.matrixKey,
    allCellIds: [...first.allCellIds],
    shards,
    startedAt,
    // the shards ran side by side in parallel CI jobs: wall clock is the longest one
    durationMs: Math.max(...reports.map((report) => report.durationMs)),
    host: first.host,
    cells,
  });
}

/** A report file read and parsed; not validated (mergeReports does that). */
export async function readReportFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw kvmtestError('REPORT_INVALID', `Cannot read the report ${path}: ${code === 'ENOENT' ? 'no such file' : String(cause)}`, { cause });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw kvmtestError('REPORT_INVALID', `The report ${path} is not valid JSON (${(cause as Error).message}); was its job cut short while writing it?`, { cause });
  }
}
