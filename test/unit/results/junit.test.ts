import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { TestCase } from '../../../src/matrix/types.js';
import { parseJUnit } from '../../../src/results/junit.js';
import { parseResults, summariseCases } from '../../../src/results/parse.js';
import { parseTap } from '../../../src/results/tap.js';

// node-junit.xml, node-tap.tap: `node --test --test-reporter=junit|tap node-sample.mjs` (node v20.20.2).
// pytest-junit.xml: `python3 -m pytest --junitxml=… -o junit_family=xunit2 pytest_sample.py` (pytest 9.0.3).
// node-tap-v14.tap is hand-written after node-tap's TAP 14 output (node-tap is not installed here).
const fixture = (name: string): string => readFileSync(new URL(`../fixtures/results/${name}`, import.meta.url), 'utf8');

/** name, suite and status of each case: the shape most assertions care about. */
const brief = (cases: TestCase[]) => cases.map(({ name, suite, status }) => ({ name, suite, status }));

describe('JUnit XML', () => {
  it('node --test: top-level tests under <testsuites>, describe blocks as nested suites', () => {
    const cases = parseJUnit(fixture('node-junit.xml'), '/work/junit.xml');
    expect(brief(cases)).toEqual([
      { name: 'top-level pass', suite: '', status: 'passed' },
      { name: 'adds', suite: 'math', status: 'passed' },
      { name: 'compares <strings> & "quotes"', suite: 'math', status: 'failed' },
      { name: 'skipped one', suite: 'math > nested', status: 'skipped' },
      { name: 'todo one', suite: 'math > nested', status: 'skipped' },
      { name: 'top-level fail', suite: '', status: 'failed' },
      // node's junit reporter drops the parent's own failure: only its child is in the file
      { name: 'child passes', suite: 'parent with subtests', status: 'passed' },
    ]);
    expect(cases.every((c) => c.file === '/work/junit.xml' && typeof c.durationMs === 'number')).toBe(true);

    const [, , mismatch, skipped, todo, topFail] = cases;
    // node strips newlines from the message attribute; the element text keeps the whole error
    expect(mismatch!.message).toBe("Expected values to be strictly equal:+ actual - expected+ 'actual'- 'expected'");
    expect(mismatch!.details).toMatch(/^Error \[ERR_TEST_FAILURE\]: Expected values to be strictly equal:\n/);
    expect(mismatch!.details).toContain("+ 'actual'\n- 'expected'");
    expect(mismatch!.details).toContain('at TestContext.<anonymous> (file://');
    expect(topFail!.message).toBe('Expected values to be strictly equal:2 !== 3');
    expect(skipped!.message).toBe('not on this host');
    expect(todo!.message).toBe('later');
    expect(summariseCases(cases)).toEqual({ total: 7, passed: 3, failed: 2, error: 0, skipped: 2 });
  });

  it('pytest: the "pytest" suite gives way to the classname; failure, error and skip messages decode', () => {
    const cases = parseJUnit(fixture('pytest-junit.xml'), 'report.xml');
    expect(brief(cases)).toEqual([
      { name: 'test_ok', suite: 'pytest_sample', status: 'passed' },
      { name: 'test_fail', suite: 'pytest_sample', status: 'failed' },
      { name: 'test_skip', suite: 'pytest_sample', status: 'skipped' },
      { name: 'test_error', suite: 'pytest_sample', status: 'error' },
      { name: 'test_param[a&b]', suite: 'pytest_sample.TestGroup', status: 'passed' },
      { name: 'test_param[q"uote]', suite: 'pytest_sample.TestGroup', status: 'passed' },
    ]);
    const [ok, fail, skip, error] = cases;
    expect(ok!.durationMs).toBe(1);
    expect(fail!.message).toBe('assert 1 == 2');
    expect(fail!.details).toBe('def test_fail():\n>       assert 1 == 2\nE       assert 1 == 2\n\npytest_sample.py:9: AssertionError');
    expect(skip!.message).toBe('not on this OS');
    expect(error!.message).toBe('failed on setup with "RuntimeError: fixture <broke>"');
    expect(error!.details).toContain('raise RuntimeError("fixture <broke>")');
    expect(summariseCases(cases)).toEqual({ total: 6, passed: 3, failed: 1, error: 1, skipped: 1 });
  });

  it('a single <testsuite> root, nested suites, CDATA, numeric entities, message from the first line', () => {
    const xml = `\uFEFF<?xml version="1.0" encoding="UTF-8"?>
<!-- written by some tool -->
<testsuite name="com.example.Outer" tests="4">
  <properties><property name="os" value="linux"/></properties>
  <testsuite name="Inner">
    <testcase name="line&#10;break" classname="com.example.Inner" time="1.2345">
      <error type="java.lang.IllegalStateException"><![CDATA[java.lang.IllegalStateException: <boom>
\tat com.example.Inner.run(Inner.java:3)]]></error>
      <system-out>noise</system-out>
    </testcase>
  </testsuite>
  <testcase name="no time" classname="com.example.Outer"><skipped/></testcase>
  <testcase name="big" classname="com.example.Outer" time="0"><failure>${'x'.repeat(5000)}</failure></testcase>
</testsuite>`;
    const [errored, skipped, big] = parseJUnit(xml, 'f.xml');
    expect(errored).toEqual({
      name: 'line\nbreak',
      suite: 'com.example.Outer > Inner',
      status: 'error',
      durationMs: 1235,
      message: 'java.lang.IllegalStateException: <boom>',
      details: 'java.lang.IllegalStateException: <boom>\n\tat com.example.Inner.run(Inner.java:3)',
      file: 'f.xml',
    });
    expect(skipped).toEqual({ name: 'no time', suite: 'com.example.Outer', status: 'skipped', file: 'f.xml' });
    expect(big!.status).toBe('failed');
    expect(big!.durationMs).toBe(0);
    expect(big!.details!.length).toBeLessThan(4100);
  });

  it('uses the classname as suite when no testsuite names one', () => {
    const cases = parseJUnit('<testsuites><testsuite><testcase name="t" classname="pkg.Mod"/></testsuite></testsuites>', 'f.xml');
    expect(brief(cases)).toEqual([{ name: 't', suite: 'pkg.Mod', status: 'passed' }]);
  });

  it('rejects malformed XML naming the file and the reason', () => {
    const call = () => parseJUnit(fixture('malformed.xml'), '/guest/out/junit.xml');
    expect(call).toThrow(expect.objectContaining({ code: 'RESULT_PARSE_FAILED' }));
    expect(call).toThrow(/\/guest\/out\/junit\.xml.*Expected closing tag 'testcase'.*line 5/);
    expect(() => parseJUnit('<html><body/></html>', 'x.xml')).toThrow(expect.objectContaining({ code: 'RESULT_PARSE_FAILED' }));
  });
});

describe('TAP', () => {
  it('node --test: leaf tests with subtest names as suite, parents not counted twice', () => {
    const cases = parseTap(fixture('node-tap.tap'), 'tap.out');
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
    expect(pass!.durationMs).toBe(Math.round(Number(/duration_ms: ([\d.]+)/.exec(fixture('node-tap.tap'))![1])));
    expect(mismatch!.message).toBe("Expected values to be strictly equal:\n+ actual - expected\n\n+ 'actual'\n- 'expected'");
    expect(mismatch!.details).toContain('operator: strictEqual');
    expect(topFail!.message).toBe('Expected values to be strictly equal:\n\n2 !== 3');
    expect(parent!.message).toBe('parent broke after its subtests');
    expect(skipped!.message).toBe('not on this host');
    expect(todo!.message).toBe('later');
    expect(summariseCases(cases)).toEqual({ total: 8, passed: 3, failed: 3, error: 0, skipped: 2 });
  });

  it('node-tap (TAP 14): per-file subtest, nested subtests, an empty subtest as a case, SKIP and TODO', () => {
    const cases = parseTap(fixture('node-tap-v14.tap'), 'tap.out');
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
    expect(parseTap(fixture('shell.tap'), 's.tap')).toEqual([
      { name: 'a', suite: '', status: 'passed', file: 's.tap' },
      { name: 'b', suite: '', status: 'failed', message: 'b', file: 's.tap' },
    ]);
  });

  it('Bail out! becomes one error case after the points before it', () => {
    const cases = parseTap(fixture('bail-out.tap'), 'b.tap');
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
    expect(() => parseTap(fixture('plain.log'), '/guest/out.log')).toThrow(expect.objectContaining({ code: 'RESULT_PARSE_FAILED' }));
    expect(() => parseTap('', 'empty.tap')).toThrow(/empty\.tap/);
  });
});

describe('parseResults', () => {
  it('tells JUnit XML from TAP by content', () => {
    expect(parseResults(fixture('node-junit.xml'), 'a')).toHaveLength(7);
    expect(parseResults(fixture('pytest-junit.xml'), 'a')).toHaveLength(6);
    expect(parseResults(fixture('node-tap.tap'), 'a')).toHaveLength(8);
    expect(parseResults(fixture('node-tap-v14.tap'), 'a')).toHaveLength(7);
    expect(parseResults(fixture('shell.tap'), 'a')).toHaveLength(2);
    expect(parseResults('\n  <testsuite name="s"><testcase name="t"/></testsuite>', 'a')).toHaveLength(1);
  });

  it('returns undefined for files that are not results: a log, other XML, source code', () => {
    expect(parseResults(fixture('plain.log'), 'console.log')).toBeUndefined();
    expect(parseResults('<?xml version="1.0"?><project><modelVersion>4.0.0</modelVersion></project>', 'pom.xml')).toBeUndefined();
    expect(parseResults(fixture('pytest_sample.py'), 'test.py')).toBeUndefined();
    expect(parseResults('', 'empty')).toBeUndefined();
  });

  it('still throws for a result file that does not parse', () => {
    expect(() => parseResults(fixture('malformed.xml'), 'junit.xml')).toThrow(expect.objectContaining({ code: 'RESULT_PARSE_FAILED' }));
  });
});

describe('summariseCases', () => {
  it('counts by status', () => {
    const c = (status: TestCase['status']): TestCase => ({ name: 'n', suite: '', status, file: 'f' });
    expect(summariseCases([c('passed'), c('passed'), c('failed'), c('error'), c('skipped')])).toEqual({ total: 5, passed: 2, failed: 1, error: 1, skipped: 1 });
    expect(summariseCases([])).toEqual({ total: 0, passed: 0, failed: 0, error: 0, skipped: 0 });
  });
});
