import type { ReportTotals, TestCase } from '../matrix/types.js';
import { parseJUnit } from './junit.js';
import { parseTap } from './tap.js';

// the first element after the XML declaration, comments and a doctype
const JUNIT_ROOT = /^(?:<\?[\s\S]*?\?>\s*|<!--[\s\S]*?-->\s*|<!DOCTYPE[^>]*>\s*)*<(?:testsuites|testsuite)[\s>/]/;
// a version line, a plan, or a top-level test point (`ok`, `ok 3`, `not ok 3 name`, `ok - name`, `ok # SKIP`)
const TAP_LINE = /^(?:TAP version \d+\s*$|1\.\.\d+(?:\s|$)|(?:not )?ok(?:\s+\d+(?:\s|$)|\s+[-#]|\s*$))/m;

/**
 * A collected file's test cases: JUnit XML or TAP, told apart by content. Undefined for any other file
 * (a log, a core dump); a file that looks like a result file but does not parse throws RESULT_PARSE_FAILED.
 */
export function parseResults(text: string, file: string): TestCase[] | undefined {
  const head = text.replace(/^\uFEFF/, '').trimStart();
  if (head.startsWith('<')) return JUNIT_ROOT.test(head) ? parseJUnit(text, file) : undefined;
  if (TAP_LINE.test(text)) return parseTap(text, file);
  return undefined;
}

export function summariseCases(cases: readonly TestCase[]): ReportTotals['cases'] {
  const totals = { total: cases.length, passed: 0, failed: 0, error: 0, skipped: 0 };
  for (const { status } of cases) totals[status] += 1;
  return totals;
}
