/** What the result parsers produce; matrix/types.ts re-exports it, so results never imports matrix. */
export type CaseStatus = 'passed' | 'failed' | 'error' | 'skipped';

/** One test case parsed from a JUnit XML or TAP file. */
export interface TestCase {
  name: string;
  /** The testsuite (JUnit) or enclosing subtest (TAP) names, outermost first, joined with ' > '. */
  suite: string;
  status: CaseStatus;
  durationMs?: number;
  /** Failure or error message, first line(s). */
  message?: string;
  /** Longer failure detail (stack, diff), when the file has one. */
  details?: string;
  /** The collected file it came from (guest path). */
  file: string;
}
