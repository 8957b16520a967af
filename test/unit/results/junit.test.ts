import { describe, expect, it } from 'vitest';
import { parseJUnit } from '../../../src/results/junit.js';
import { brief, summariseCases } from '../fixtures/case-views.js';
import { resultFile } from '../fixtures/result-files.js';

describe('JUnit XML', () => {
  it('node --test: top-level tests under <testsuites>, describe blocks as nested suites', () => {
    const cases = parseJUnit(resultFile('node-junit.xml'), '/work/junit.xml');
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
    const cases = parseJUnit(resultFile('pytest-junit.xml'), 'report.xml');
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
    const call = () => parseJUnit(resultFile('malformed.xml'), '/guest/out/junit.xml');
    expect(call).toThrow(expect.objectContaining({ code: 'RESULT_PARSE_FAILED' }));
    expect(call).toThrow(/\/guest\/out\/junit\.xml.*Expected closing tag 'testcase'.*line 5/);
    expect(() => parseJUnit('<html><body/></html>', 'x.xml')).toThrow(expect.objectContaining({ code: 'RESULT_PARSE_FAILED' }));
  });

  it('clips names, suite paths and messages as each case is made, however deep the suites nest', () => {
    const deep = `${`<testsuite name="${'s'.repeat(1000)}">`.repeat(40)}<testcase name="${'n'.repeat(5000)}" classname="${'c'.repeat(5000)}"><failure message="${'m'.repeat(9000)}"/></testcase>${'</testsuite>'.repeat(40)}`;
    const [testCase] = parseJUnit(`<testsuites>${deep}</testsuites>`, 'deep.xml');
    expect(testCase!.suite.length).toBeLessThanOrEqual(2001);
    expect(testCase!.suite.startsWith(`${'s'.repeat(1000)} > s`)).toBe(true);
    expect(testCase!.name).toHaveLength(2001);
    expect(testCase!.message).toHaveLength(4001);
    const [pytest] = parseJUnit(`<testsuite name="pytest">${deep.slice(deep.indexOf('<testcase'), deep.indexOf('</testcase>') + 11)}</testsuite>`, 'p.xml');
    expect(pytest!.suite).toHaveLength(2001);
  });

  it('a parser limit (nesting too deep) is RESULT_PARSE_FAILED naming the file, not an uncoded error', () => {
    const deep = `<testsuites>${'<testsuite name="s">'.repeat(3000)}${'</testsuite>'.repeat(3000)}</testsuites>`;
    expect(() => parseJUnit(deep, 'deep.xml')).toThrow(expect.objectContaining({ code: 'RESULT_PARSE_FAILED', message: expect.stringContaining('deep.xml') }));
  });
});
