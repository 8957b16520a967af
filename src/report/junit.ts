import { stripVTControlCharacters } from 'node:util';
import { XMLBuilder } from 'fast-xml-parser';
import type { CellAttempt, CellResult, MatrixReport, TestCase } from '../matrix/types.js';
import { cellProblem } from './table.js';

// Characters XML 1.0 forbids even as references; lone surrogates fall outside the ranges too (u flag).
const INVALID_XML_CHARS = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

/** Text safe to put in XML 1.0: terminal escape sequences and forbidden characters removed (entities are the builder's job). */
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

type XmlNode = Record<string, unknown>;

interface Counts {
  tests: number;
  failures: number;
  errors: number;
  skipped: number;
}

function countOf(testcases: XmlNode[]): Counts {
  return {
    tests: testcases.length,
    failures: testcases.filter((t) => 'failure' in t).length,
    errors: testcases.filter((t) => 'error' in t).length,
    skipped: testcases.filter((t) => 'skipped' in t).length,
  };
}

function outcome(message: string, details?: string): XmlNode {
  const node: XmlNode = { '@_message': xmlAttr(message) };
  const text = details ? xmlText(details) : '';
  if (text) node['#text'] = text;
  return node;
}

function caseNode(cell: CellResult, testCase: TestCase): XmlNode {
  const node: XmlNode = {
    '@_name': xmlAttr(testCase.name),
    '@_classname': xmlAttr(testCase.suite ? `${cell.id}.${testCase.suite}` : cell.id),
  };
  if (testCase.durationMs !== undefined) node['@_time'] = seconds(testCase.durationMs);
  const message = testCase.message ?? testCase.status;
  if (testCase.status === 'failed') node.failure = outcome(message, testCase.details);
  else if (testCase.status === 'error') node.error = outcome(message, testCase.details);
  else if (testCase.status === 'skipped') node.skipped = testCase.message ? { '@_message': xmlAttr(testCase.message) } : '';
  return node;
}

/** The synthetic `run` testcase standing for the cell itself (no parsed cases, or a failure beyond them). */
function runNode(cell: CellResult): XmlNode {
  const node: XmlNode = {
    '@_name': 'run',
    '@_classname': xmlAttr(cell.id),
    '@_time': seconds(cell.durations.run ?? cell.durations.total),
  };
  switch (cell.status) {
    case 'failed':
      node.failure = outcome(cellProblem(cell), cell.stderrTail);
      break;
    case 'error':
    case 'timeout':
      node.error = outcome(cellProblem(cell), cell.error?.consoleTail || cell.stderrTail);
      break;
    case 'skipped':
      node.skipped = { '@_message': xmlAttr(cell.error?.message ?? 'skipped') };
      break;
  }
  return node;
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

function suiteNode(report: MatrixReport, cell: CellResult): { node: XmlNode; counts: Counts; ms: number } {
  const testcases = cell.cases.map((testCase) => caseNode(cell, testCase));
  const failedCases = cell.cases.some((c) => c.status === 'failed' || c.status === 'error');
  // no cases: the cell is the test; with cases, still report a failure the cases do not show (boot error, crash after the last case)
  if (testcases.length === 0 || cell.status === 'error' || cell.status === 'timeout' || (cell.status === 'failed' && !failedCases)) {
    testcases.push(runNode(cell));
  }
  const counts = countOf(testcases);
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
  const node: XmlNode = {
    '@_name': xmlAttr(cell.id),
    '@_tests': counts.tests,
    '@_failures': counts.failures,
    '@_errors': counts.errors,
    '@_skipped': counts.skipped,
    '@_time': seconds(cell.durations.total),
    '@_timestamp': report.startedAt,
    '@_hostname': xmlAttr(report.host.hostname),
    properties: {
      property: properties.filter(([, value]) => value !== undefined && value !== null && value !== '').map(([name, value]) => ({ '@_name': xmlAttr(name), '@_value': xmlAttr(String(value)) })),
    },
    testcase: testcases,
  };
  const out = [cell.status === 'flaky' ? flakyNote(cell) : '', xmlText(cell.stdoutTail)].filter(Boolean).join('\n');
  const err = xmlText(cell.stderrTail);
  if (out) node['system-out'] = out;
  if (err) node['system-err'] = err;
  return { node, counts, ms: cell.durations.total };
}

/** JUnit XML for CI test views: one <testsuite> per cell, named by the cell id, so each OS shows on its own. */
export function toJUnit(report: MatrixReport): string {
  const suites = report.cells.map((cell) => suiteNode(report, cell));
  const sum = (key: keyof Counts) => suites.reduce((total, s) => total + s.counts[key], 0);
  const builder = new XMLBuilder({
    ignoreAttributes: false,
    attributeNamePrefix: '@_',
    textNodeName: '#text',
    format: true,
    indentBy: '  ',
    suppressEmptyNode: true,
  });
  const xml = builder.build({
    '?xml': { '@_version': '1.0', '@_encoding': 'UTF-8' },
    testsuites: {
      '@_name': 'kvmtest',
      '@_tests': sum('tests'),
      '@_failures': sum('failures'),
      '@_errors': sum('errors'),
      '@_skipped': sum('skipped'),
      '@_time': seconds(report.durationMs),
      '@_timestamp': report.startedAt,
      testsuite: suites.map((s) => s.node),
    },
  }) as string;
  return xml.endsWith('\n') ? xml : `${xml}\n`;
}
