import { XMLParser } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import { toJUnit } from '../../../src/report/junit.js';
import { debian11, debian12, full, report } from '../fixtures/sample-run.js';

describe('toJUnit', () => {
  const xml = toJUnit(full);
  // biome-ignore lint/suspicious/noExplicitAny: parsed XML, walked freely by the assertions below
  type Xml = any;
  const parsed = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '',
    parseAttributeValue: false,
    isArray: (name) => ['testsuite', 'testcase', 'property'].includes(name),
  }).parse(xml) as { testsuites: Record<string, string> & { testsuite: Record<string, Xml>[] } };
  const suites = parsed.testsuites.testsuite;
  const suite = (id: string) => suites.find((s) => s.name === id)!;

  it('writes one testsuite per cell, named by the cell id, with the counts CI views show', () => {
    expect(suites.map((s) => s.name)).toEqual(['debian-11', 'debian-12', 'debian-13', 'fedora-41']);
    expect(parsed.testsuites).toMatchObject({ name: 'kvmtest', tests: '7', failures: '1', errors: '1', skipped: '1', time: '330.000' });
    expect(suite('debian-11')).toMatchObject({ tests: '2', failures: '1', errors: '0', skipped: '0', time: '22.145', timestamp: full.startedAt });
    expect(suite('debian-12')).toMatchObject({ tests: '3', failures: '0', errors: '0', skipped: '1' });
  });

  it('maps parsed cases with classname cell.suite, failures and skips', () => {
    const cases = suite('debian-11').testcase;
    expect(cases[0]).toMatchObject({ name: 'adds', classname: 'debian-11.math', time: '0.003' });
    expect(cases[1].name).toBe('parses <tag> & "quotes"');
    expect(cases[1].failure.message).toBe('expected <a> & "b"');
    expect(cases[1].failure['#text']).toContain('at parse (src/parse.js:3:9)');
    const skipped = suite('debian-12').testcase[2];
    expect(skipped).toMatchObject({ name: 'ipv6', classname: 'debian-12', skipped: { message: 'no network' } });
  });

  it('reports a cell without cases as a synthetic "run" testcase', () => {
    const [run] = suite('debian-13').testcase;
    expect(run).toMatchObject({ name: 'run', classname: 'debian-13' });
    expect(run.error.message).toBe('BOOT_TIMEOUT: the guest did not answer within 5m');
    expect(run.error['#text']).toBe('[  OK  ] Reached target cloud-init');
    const failedRun = toJUnit(report([{ ...debian11, cases: [] }]));
    expect(failedRun).toContain('<failure message="exit code 1">');
    const errored = toJUnit(report([{ ...debian11, status: 'error', error: { code: 'AGENT_DISCONNECTED', message: 'gone' } }]));
    expect(errored).toMatch(/<testcase name="run"[^>]*>\s*<error message="AGENT_DISCONNECTED: gone">/);
  });

  it('notes flaky cells in system-out while the run passes', () => {
    const flaky = suite('fedora-41');
    expect(flaky).toMatchObject({ tests: '1', failures: '0', errors: '0' });
    expect(flaky['system-out']).toContain('flaky: passed on attempt 2 after failed (exit code 1)');
    expect(flaky['system-out']).toContain('all good');
  });

  it('records the cell in properties', () => {
    const props = Object.fromEntries((suite('debian-11').properties.property as { name: string; value: string }[]).map((p) => [p.name, p.value]));
    expect(props).toMatchObject({ image: 'debian-11', status: 'failed', exitCode: '1', 'guest.os': 'Debian GNU/Linux 11 (bullseye)' });
    const withAxes = toJUnit(report([{ ...debian12, id: 'debian-12/cpus=2', axes: { cpus: 2 }, collected: [{ path: '/work/junit.xml', error: 'no such file' }] }]));
    expect(withAxes).toContain('<property name="axis.cpus" value="2"/>');
    expect(withAxes).toContain('<property name="collect.error" value="/work/junit.xml: no such file"/>');
  });

  it('escapes entities and strips ANSI escapes and characters XML 1.0 forbids', () => {
    expect(xml).toContain('name="parses &lt;tag&gt; &amp; &quot;quotes&quot;"');
    expect(xml).not.toContain('\x1b');
    expect(xml).not.toContain('\x00');
    expect(suite('debian-11')['system-err']).toContain('AssertionError: expected <a> & "b"');
  });
});
