import { stripVTControlCharacters } from 'node:util';
import type { CellAttempt, CellResult, MatrixReport, TestCase } from '../matrix/types.js';
import { cellProblem } from './table.js';

// Characters XML 1.0 forbids even as references; lone surrogates fall outside the ranges too (u flag).
const INVALID_XML_CHARS = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

/** Text safe to put in XML 1.0: terminal escape sequences and forbidden characters removed (markup is escaped by text() and attrs() below). */
export function xmlText(text: string): string {
  return stripVTControlCharacters(text).replace(INVALID_XML_CHARS, '');
}

/** Attribute values: parsers turn newlines into spaces anyway, so do it visibly here. */
function xmlAttr(text: string): string {
  return xmlText(text)
    .replace(/\s*[\r\n]+\s*/g, ' ')
    .trim();
}

const seconds = (ms: number | undefined) => ((ms ?? 0) / 1000).toFixed(3);

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' };
/** Element text: XML-safe characters, markup escaped. */
const text = (value: string) => xmlText(value).replace(/[&<>]/g, (ch) => ENTITIES[ch]!);
/** ` name="value"` for each attribute that has a value: one line, XML-safe, escaped. */
const attrs = (pairs: Record<string, string | number | undefined>) =>
  Object.entries(pairs)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => ` ${name}="${xmlAttr(String(value)).replace(/[&<>"]/g, (ch) => ENTITIES[ch]!)}"`)
    .join('');
/** One element on one line: empty (`<x a="1"/>`), or holding text. */
const element = (name: string, pairs: Record<string, string | number | undefined>, body = '') => (body ? `<${name}${attrs(pairs)}>${text(body)}</${name}>` : `<${name}${attrs(pairs)}/>`);

interface Counts {
  tests: number;
  failures: number;
  errors: number;
  skipped: number;
}

/** A <testcase> with its outcome, indented as the fourth level. */
function testcase(pairs: Record<string, string | number | undefined>, outcome?: { tag: 'failure' | 'error' | 'skipped'; message?: string | undefined; details?: string | undefined }): string {
  if (!outcome) return `    ${element('testcase', pairs)}\n`;
  return `    <testcase${attrs(pairs)}>\n      ${element(outcome.tag, { message: outcome.message }, outcome.details)}\n    </testcase>\n`;
}

function caseXml(cell: CellResult, testCase: TestCase): string {
  const pairs = {
    name: testCase.name,
    classname: testCase.suite ? `${cell.id}.${testCase.suite}` : cell.id,
    time: testCase.durationMs !== undefined ? seconds(testCase.durationMs) : undefined,
  };
  const message = testCase.message ?? testCase.status;
  if (testCase.status === 'failed') return testcase(pairs, { tag: 'failure', message, details: testCase.details });
  if (testCase.status === 'error') return testcase(pairs, { tag: 'error', message, details: testCase.details });
  if (testCase.status === 'skipped') return testcase(pairs, { tag: 'skipped', message: testCase.message });
  return testcase(pairs);
}

/** Whether the cell gets the synthetic `run` testcase: no parsed cases, or a failure beyond them (boot error, crash after the last case). */
function needsRunCase(cell: CellResult): boolean {
  if (cell.cases.length === 0 || cell.status === 'error' || cell.status === 'timeout') return true;
  return cell.status === 'failed' && !cell.cases.some((c) => c.status === 'failed' || c.status === 'error');
}

/** The synthetic `run` testcase standing for the cell itself. */
function runXml(cell: CellResult): string {
  const pairs = { name: 'run', classname: cell.id, time: seconds(cell.durations.run ?? cell.durations.total) };
  switch (cell.status) {
    case 'failed':
      return testcase(pairs, { tag: 'failure', message: cellProblem(cell), details: cell.stderrTail });
    case 'error':
    case 'timeout':
      return testcase(pairs, { tag: 'error', message: cellProblem(cell), details: cell.error?.consoleTail || cell.stderrTail });
    case 'skipped':
      return testcase(pairs, { tag: 'skipped', message: cell.error?.message ?? 'skipped' });
    default:
      return testcase(pairs);
  }
}

/** A cell's counts, the `run` testcase included, without building any testcase. */
function countsOf(cell: CellResult): Counts {
  const counts: Counts = { tests: cell.cases.length, failures: 0, errors: 0, skipped: 0 };
  for (const c of cell.cases) {
    if (c.status === 'failed') counts.failures += 1;
    else if (c.status === 'error') counts.errors += 1;
    else if (c.status === 'skipped') counts.skipped += 1;
  }
  if (needsRunCase(cell)) {
    counts.tests += 1;
    if (cell.status === 'failed') counts.failures += 1;
    else if (cell.status === 'error' || cell.status === 'timeout') counts.errors += 1;
    else if (cell.status === 'skipped') counts.skipped += 1;
  }
  return counts;
}

function describeAttempt(attempt: CellAttempt): string {
  if (attempt.error) return `${attempt.status} (${attempt.error.code})`;
  if (attempt.exitCode !== null) return `${attempt.status} (exit code ${attempt.exitCode})`;
  return attempt.status;
}

/** `flaky: passed on attempt 2 after failed (exit code 1)`. */
export function flakyNote(cell: CellResult): string {
  const earlier = cell.attempts.slice(0, -1).map(describeAttempt);
  return `flaky: passed on attempt ${cell.attempts.length} after ${earlier.join(', ') || 'earlier failures'}`;
}

/** One cell's <testsuite>, testcase by testcase. */
function* suiteXml(report: MatrixReport, cell: CellResult, counts: Counts): Generator<string> {
  const properties: [string, string | number | boolean | null | undefined][] = [
    ['image', cell.image],
    ...Object.entries(cell.axes).map(([name, value]): [string, string | number | boolean] => [`axis.${name}`, value]),
    ['status', cell.status],
    ['exitCode', cell.exitCode],
    ['signal', cell.signal],
    ['attempts', cell.attempts.length || undefined],
    ['error', cell.error ? `${cell.error.code}: ${cell.error.message}` : undefined],
    ['guest.os', cell.guest?.os],
    ['guest.kernel', cell.guest?.kernel],
    ['guest.node', cell.guest?.node],
    ...(cell.collected ?? []).filter((entry) => entry.error).map((entry): [string, string] => ['collect.error', `${entry.path}: ${entry.error}`]),
    ['consoleLog', cell.consoleLog],
    ['outDir', cell.outDir],
  ];
  const shown = properties.filter(([, value]) => value !== undefined && value !== null && value !== '');
  yield `  <testsuite${attrs({ name: cell.id, ...counts, time: seconds(cell.durations.total), timestamp: report.startedAt, hostname: report.host.hostname })}>\n`;
  if (shown.length > 0) {
    yield `    <properties>\n${shown.map(([name, value]) => `      ${element('property', { name, value: String(value) })}\n`).join('')}    </properties>\n`;
  }
  for (const testCase of cell.cases) yield caseXml(cell, testCase);
  if (needsRunCase(cell)) yield runXml(cell);
  const out = [cell.status === 'flaky' ? flakyNote(cell) : '', xmlText(cell.stdoutTail)].filter(Boolean).join('\n');
  if (out) yield `    ${element('system-out', {}, out)}\n`;
  if (xmlText(cell.stderrTail)) yield `    ${element('system-err', {}, cell.stderrTail)}\n`;
  yield '  </testsuite>\n';
}

/**
 * JUnit XML for CI test views, piece by piece (a report of any size is written without one giant
 * string): one <testsuite> per cell, named by the cell id, so each OS shows on its own.
 */
export function* junitChunks(report: MatrixReport): Generator<string> {
  const counts = report.cells.map(countsOf);
  const sum = (key: keyof Counts) => counts.reduce((total, c) => total + c[key], 0);
  const totals = { tests: sum('tests'), failures: sum('failures'), errors: sum('errors'), skipped: sum('skipped') };
  yield '<?xml version="1.0" encoding="UTF-8"?>\n';
  yield `<testsuites${attrs({ name: 'kvmtest', ...totals, time: seconds(report.durationMs), timestamp: report.startedAt })}>\n`;
  for (const [i, cell] of report.cells.entries()) yield* suiteXml(report, cell, counts[i]!);
  yield '</testsuites>\n';
}

/** The whole JUnit XML as one string (junitChunks joined). */
export function toJUnit(report: MatrixReport): string {
  return [...junitChunks(report)].join('');
}
