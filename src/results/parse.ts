import { parseJUnit } from './junit.js';
import { clip, MAX_NAME_CHARS } from './limits.js';
import { parseTap } from './tap.js';
import type { TestCase } from './types.js';

/** Only this much of a file's start is looked at to tell what it is. */
export const SNIFF_BYTES = 64 * 1024;
/** A result file larger than this is not parsed (RESULT_TOO_LARGE). */
export const MAX_RESULT_FILE_BYTES = 16 * 1024 * 1024;
/** Cases kept per file; the rest are counted in one error case. */
export const MAX_CASES_PER_FILE = 100_000;

const JUNIT_ROOT = /^<(?:testsuites|testsuite)[\s>/]/;
// a version line, a plan, or a top-level test point (`ok`, `ok 3`, `not ok 3 name`, `ok - name`, `ok # SKIP`)
const TAP_LINE = /^(?:TAP version \d+\s*$|1\.\.\d+(?:\s|$)|(?:not )?ok(?:\s+\d+(?:\s|$)|\s+[-#]|\s*$))/m;

export type ResultKind = 'junit' | 'tap';

/**
 * What a file's start says it is, in linear time: the XML declaration, processing instructions,
 * comments and a doctype are skipped with indexOf (no backtracking regex), then the root element is
 * named. Looks at the first SNIFF_BYTES characters only. Pure.
 */
export function sniffResults(text: string): ResultKind | undefined {
  const head = text.slice(0, SNIFF_BYTES).replace(/^\uFEFF/, '');
  let at = skipSpace(head, 0);
  if (head.startsWith('<', at)) {
    for (;;) {
      const close = head.startsWith('<?', at) ? '?>' : head.startsWith('<!--', at) ? '-->' : head.startsWith('<!DOCTYPE', at) ? '>' : undefined;
      if (!close) break;
      const end = head.indexOf(close, at + 2);
      if (end < 0) return undefined;
      at = skipSpace(head, end + close.length);
    }
    return JUNIT_ROOT.test(head.slice(at, at + 16)) ? 'junit' : undefined;
  }
  return TAP_LINE.test(head) ? 'tap' : undefined;
}

function skipSpace(text: string, from: number): number {
  let at = from;
  while (at < text.length && /\s/.test(text[at]!)) at++;
  return at;
}

/**
 * A collected file's test cases: JUnit XML or TAP, told apart by content. Undefined for any other file
 * (a log, a core dump); a file that looks like a result file but does not parse throws RESULT_PARSE_FAILED.
 * The file name is clipped once, and that one string is every case's `file`.
 */
export function parseResults(text: string, file: string): TestCase[] | undefined {
  const kind = sniffResults(text);
  if (!kind) return undefined;
  const shown = clip(file, MAX_NAME_CHARS);
  return bound(kind === 'junit' ? parseJUnit(text, shown) : parseTap(text, shown), shown);
}

/** Caps the cases of one file (their strings were clipped as the parser made them). */
function bound(cases: TestCase[], file: string): TestCase[] {
  if (cases.length <= MAX_CASES_PER_FILE) return cases;
  const kept = cases.slice(0, MAX_CASES_PER_FILE);
  kept.push({
    name: `${cases.length - kept.length} more cases not read`,
    suite: '',
    status: 'error',
    file,
    message: `RESULT_TOO_LARGE: the file holds ${cases.length} cases; kvmtest reads at most ${MAX_CASES_PER_FILE} per file`,
  });
  return kept;
}
