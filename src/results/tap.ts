import { Parser, type Result } from 'tap-parser';
import { stringify } from 'yaml';
import { kvmtestError } from '../errors.js';
import { clip, joinSuite, MAX_DETAILS_CHARS, MAX_MESSAGE_CHARS, MAX_NAME_CHARS } from './limits.js';
import type { TestCase } from './types.js';

/**
 * TAP (13 or 14, subtests included) → one TestCase per leaf test point. A subtest's name becomes its
 * children's suite; its closing point is a case only when it had no test points of its own, or failed
 * while they all passed (node:test, an error thrown after the subtests ran). Each subtest's suite
 * path is built once, clipped, and shared by its cases; names and messages are clipped as made.
 */
export function parseTap(text: string, file: string): TestCase[] {
  const root = new Parser();
  const points: { result: Result; parser: Parser }[] = [];
  let bailout: { reason: string; parser: Parser } | undefined;
  let sawVersion = false;

  const watch = (parser: Parser): void => {
    let child: Parser | undefined;
    parser.on('child', (next: Parser) => {
      child = next;
      watch(next);
    });
    parser.on('assert', (result: Result) => {
      // a subtest's closing point repeats its children's outcome, unless the subtest itself failed after they passed
      const closed = child?.closingTestPoint === result ? child : undefined;
      if (closed && closed.count > 0 && (result.ok || result.todo || result.skip || !closed.ok)) return;
      points.push({ result, parser });
    });
    // a bail-out in a subtest bails every parser above it: keep the first, innermost one
    parser.on('bailout', (reason: string) => {
      bailout ??= { reason, parser };
    });
  };
  watch(root);
  root.on('version', () => {
    sawVersion = true;
  });
  const lines = text.replace(/\r\n/g, '\n');
  root.write(lines.endsWith('\n') ? lines : `${lines}\n`);
  // end() makes up a version line and an empty plan for input with no TAP: note what the text itself had first
  const hadVersion = sawVersion;
  root.end();
  if (!hadVersion && root.syntheticPlan) {
    throw kvmtestError('RESULT_PARSE_FAILED', `Could not parse ${file} as TAP: no version line, plan or test point in it`);
  }
  const suites = new Map<Parser, string>();
  const cases = points.map(({ result, parser }) => toCase(result, suiteOf(parser, suites), file));
  if (bailout) {
    const testCase: TestCase = { name: 'Bail out!', suite: suiteOf(bailout.parser, suites), status: 'error', file };
    if (bailout.reason) testCase.message = clip(bailout.reason, MAX_MESSAGE_CHARS);
    cases.push(testCase);
  }
  return cases;
}

function toCase(result: Result, suite: string, file: string): TestCase {
  const testCase: TestCase = { name: clip(result.name || `#${result.id}`, MAX_NAME_CHARS), suite, status: 'passed', file };
  // tap-parser moves node:test's duration_ms diagnostic and node-tap's `# time=` directive here
  if (result.time !== null) testCase.durationMs = Math.round(result.time);
  const reason = result.skip || result.todo;
  if (reason) {
    testCase.status = 'skipped';
    if (typeof reason === 'string') testCase.message = clip(reason, MAX_MESSAGE_CHARS);
  } else if (!result.ok) {
    testCase.status = 'failed';
    testCase.message = clip(diagMessage(result.diag) ?? testCase.name, MAX_MESSAGE_CHARS);
    if (result.diag && typeof result.diag === 'object' && Object.keys(result.diag).length > 0) {
      testCase.details = clip(stringify(result.diag).trim(), MAX_DETAILS_CHARS, '\n…');
    }
  }
  return testCase;
}

function diagMessage(diag: unknown): string | undefined {
  if (!diag || typeof diag !== 'object') return undefined;
  for (const key of ['message', 'error'] as const) {
    let value = (diag as Record<string, unknown>)[key];
    if (value && typeof value === 'object') value = (value as Record<string, unknown>).message;
    if (typeof value === 'string' && value.trim()) return value.trim();
  }
  return undefined;
}

/**
 * The enclosing subtests' names, outermost first, joined with ' > ' and clipped; an unnamed
 * (unadorned) subtest takes its closing point's name. Built once per subtest from its parent's
 * (`known`), so its cases share one string.
 */
function suiteOf(parser: Parser, known: Map<Parser, string>): string {
  if (!parser.parent) return '';
  let suite = known.get(parser);
  if (suite === undefined) {
    const outer = suiteOf(parser.parent, known);
    const name = parser.name || parser.closingTestPoint?.name;
    suite = joinSuite(outer, name);
    known.set(parser, suite);
  }
  return suite;
}
