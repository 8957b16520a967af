import { describe, expect, it } from 'vitest';
import { parseTap } from '../../../src/results/tap.js';
import { brief, summariseCases } from '../fixtures/case-views.js';
import { resultFile } from '../fixtures/result-files.js';

describe('TAP', () => {
  it('node --test: leaf tests with subtest names as suite, parents not counted twice', () => {
    const cases = parseTap(resultFile('node-tap.tap'), 'tap.out');
    expect(brief(cases)).toEqual([
      { name: 'top-level pass', suite: '', status: 'passed' },
      { name: 'adds', suite: 'math', status: 'passed' },
      { name: 'compares <strings> & "quotes"', suite: 'math', status: 'failed' },
      { name: 'skipped one', suite: 'math > nested', status: 'skipped' },
      { name: 'todo one', suite: 'math > nested', status: 'skipped' },
      { name: 'top-level fail', suite: '', status: 'failed' },
      { name: 'child passes', suite: 'parent with subtests', status: 'passed' },
      // the parent failed on its own after its subtests passed: a case of its own
      { name: 'parent with subtests', suite: '', status: 'failed' },
    ]);
    const [pass, , mismatch, skipped, todo, topFail, , parent] = cases;
    expect(pass!.durationMs).toBe(Math.round(Number(/duration_ms: ([\d.]+)/.exec(resultFile('node-tap.tap'))![1])));
    expect(mismatch!.message).toBe("Expected values to be strictly equal:\n+ actual - expected\n\n+ 'actual'\n- 'expected'");
    expect(mismatch!.details).toContain('operator: strictEqual');
    expect(topFail!.message).toBe('Expected values to be strictly equal:\n\n2 !== 3');
    expect(parent!.message).toBe('parent broke after its subtests');
    expect(skipped!.message).toBe('not on this host');
    expect(todo!.message).toBe('later');
    expect(summariseCases(cases)).toEqual({ total: 8, passed: 3, failed: 3, error: 0, skipped: 2 });
  });

  it('node-tap (TAP 14): per-file subtest, nested subtests, an empty subtest as a case, SKIP and TODO', () => {
    const cases = parseTap(resultFile('node-tap-v14.tap'), 'tap.out');
    const file = 'test/math.test.js';
    expect(brief(cases)).toEqual([
      { name: 'adds small numbers', suite: `${file} > addition`, status: 'passed' },
      { name: 'should be equal', suite: `${file} > addition`, status: 'failed' },
      { name: 'empty', suite: file, status: 'passed' },
      { name: 'not ready', suite: file, status: 'skipped' },
      { name: 'later', suite: file, status: 'skipped' },
      { name: 'boom', suite: `${file} > throws`, status: 'failed' },
      { name: 'deep pass', suite: `${file} > outer > inner`, status: 'passed' },
    ]);
    const [, unequal, , notReady, later, boom] = cases;
    // no message field in node-tap's diagnostics: the name stands in, the YAML is the detail
    expect(unequal!.message).toBe('should be equal');
    expect(unequal!.details).toContain('+0.30000000000000004');
    expect(boom!.message).toBe('boom');
    expect(boom!.details).toContain('tapCaught: testFunctionThrow');
    expect(notReady!.message).toBe('waiting on the API');
    expect(later!.message).toBeUndefined();
  });

  it('plain shell TAP', () => {
    expect(parseTap(resultFile('shell.tap'), 's.tap')).toEqual([
      { name: 'a', suite: '', status: 'passed', file: 's.tap' },
      { name: 'b', suite: '', status: 'failed', message: 'b', file: 's.tap' },
    ]);
  });

  it('Bail out! becomes one error case after the points before it', () => {
    const cases = parseTap(resultFile('bail-out.tap'), 'b.tap');
    expect(brief(cases)).toEqual([
      { name: 'install', suite: '', status: 'passed' },
      { name: 'migrate', suite: '', status: 'failed' },
      { name: 'Bail out!', suite: '', status: 'error' },
    ]);
    expect(cases[2]!.message).toBe('database unreachable');

    const nested = parseTap('TAP version 14\n# Subtest: outer\n    ok 1 - in\n    Bail out! boom\n', 'n.tap');
    expect(brief(nested)).toEqual([
      { name: 'in', suite: 'outer', status: 'passed' },
      { name: 'Bail out!', suite: 'outer', status: 'error' },
    ]);
  });

  it('unadorned and buffered subtests, CRLF line ends, a skip-all plan', () => {
    const unadorned = parseTap('TAP version 13\n    ok 1 - inner\n    1..1\nok 1 - outer\n1..1\n', 'u.tap');
    expect(brief(unadorned)).toEqual([{ name: 'inner', suite: 'outer', status: 'passed' }]);
    const buffered = parseTap('TAP version 14\nok 1 - outer {\n    not ok 1 - inner # TODO not yet\n    1..1\n}\n1..1\n', 'b.tap');
    expect(brief(buffered)).toEqual([{ name: 'inner', suite: 'outer', status: 'skipped' }]);
    expect(brief(parseTap('1..2\r\nok 1 - a\r\nok 2 - b # SKIP\r\n', 'c.tap'))).toEqual([
      { name: 'a', suite: '', status: 'passed' },
      { name: 'b', suite: '', status: 'skipped' },
    ]);
    expect(parseTap('1..0 # SKIP no KVM here\n', 's.tap')).toEqual([]);
  });

  it('rejects text with no TAP in it', () => {
    expect(() => parseTap(resultFile('plain.log'), '/guest/out.log')).toThrow(expect.objectContaining({ code: 'RESULT_PARSE_FAILED' }));
    expect(() => parseTap('', 'empty.tap')).toThrow(/empty\.tap/);
  });

  it('clips names, suite paths and messages as each case is made', () => {
    const long = 'x'.repeat(3000);
    const text = `TAP version 13\n# Subtest: ${long}\n    # Subtest: ${long}\n        not ok 1 - ${'n'.repeat(5000)}\n          ---\n          message: ${'m'.repeat(9000)}\n          ...\n        1..1\n    not ok 1 - ${long}\n    1..1\nnot ok 1 - ${long}\n1..1\n`;
    const [leaf] = parseTap(text, 't.tap');
    expect(leaf!.suite).toHaveLength(2001);
    expect(leaf!.name).toHaveLength(2001);
    expect(leaf!.message).toHaveLength(4001);
  });
});
