/**
 * The OS matrix on real guests: the sample project's suite over Debian 11, 12 and 13, where one
 * case passes everywhere and one fails on Debian 11 only, reported the same way by every reporter,
 * by the library and the CLI, sharded and merged; plus scheduling: timeout, retries, fail-fast.
 */

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { XMLParser } from 'fast-xml-parser';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/matrix/config.js';
import { runMatrix } from '../../src/matrix/run.js';
import type { CellResult, MatrixReport } from '../../src/matrix/types.js';
import { toJUnit } from '../../src/report/junit.js';
import { launchChromium } from '../browser/chromium.js';
import { guestDirs } from './helpers.js';

const cli = join(__dirname, '../../dist/cli/main.js');
const sample = join(__dirname, '../../fixtures/sample-project');
const work = mkdtempSync(join(tmpdir(), 'kvmtest-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const brief = (report: MatrixReport) => report.cells.map((c) => ({ id: c.id, status: c.status, exitCode: c.exitCode, cases: c.cases.map((t) => `${t.status} ${t.name}`) }));
const cell = (report: MatrixReport, id: string): CellResult => report.cells.find((c) => c.id === id)!;

/** What an HTML report shows in headless Chromium: each grid entry's status, and the failed cases' messages. */
async function renderedReport(path: string): Promise<{ grid: string[]; failedMessages: string[]; consoleLinks: (string | null)[] }> {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    await page.goto(pathToFileURL(path).href);
    return {
      grid: await page.locator('table.grid td[data-status]').evaluateAll((tds) => tds.map((td) => `${td.getAttribute('data-cell')} ${td.getAttribute('data-status')}`)),
      failedMessages: await page.locator('section[data-status="failed"] .case .message').allInnerTexts(),
      consoleLinks: await page.locator('section a', { hasText: 'console log' }).evaluateAll((as) => as.map((a) => a.getAttribute('href'))),
    };
  } finally {
    await browser.close();
  }
}

/** What the sample suite must report: its OS-dependent case fails on Debian 11 alone. */
function expectPerOsDifference(report: MatrixReport, dependent: string, everywhere: string): void {
  expect(brief(report)).toEqual([
    { id: 'debian-11', status: 'failed', exitCode: 1, cases: [`passed ${everywhere}`, `failed ${dependent}`] },
    { id: 'debian-12', status: 'passed', exitCode: 0, cases: [`passed ${everywhere}`, `passed ${dependent}`] },
    { id: 'debian-13', status: 'passed', exitCode: 0, cases: [`passed ${everywhere}`, `passed ${dependent}`] },
  ]);
  expect(report.ok).toBe(false);
  expect(report.totals).toMatchObject({ cells: 3, passed: 2, failed: 1, cases: { total: 6, passed: 5, failed: 1 } });
  // one JUnit testsuite per cell, named by the cell, with that cell's counts
  const xml = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', isArray: (name) => name === 'testsuite' || name === 'testcase' }).parse(toJUnit(report));
  expect(xml.testsuites.testsuite.map((s: { name: string; failures: string; tests: string }) => [s.name, s.tests, s.failures])).toEqual([
    ['debian-11', '2', '1'],
    ['debian-12', '2', '0'],
    ['debian-13', '2', '0'],
  ]);
}

describe('runMatrix over Debian 11, 12 and 13', () => {
  let python: MatrixReport;

  it("reports the sample suite per OS, run by each guest's python3 (JUnit)", async () => {
    const { config } = (await loadConfig(undefined, sample))!;
    const phases: string[] = [];
    python = await runMatrix({ ...config, capsule: 'never', outDir: join(work, 'python'), onEvent: (e) => e.type === 'phase' && phases.push(`${e.cell.id} ${e.phase}`) });
    expectPerOsDifference(python, 'test_reads_pyproject_with_tomllib', 'test_kernel_is_linux');
    const d11 = cell(python, 'debian-11');
    expect(d11.cases[1]!.message).toMatch(/No module named 'tomllib'/);
    expect(d11.guest?.os).toBe('Debian GNU/Linux 11 (bullseye)');
    expect(d11.stdoutTail).toMatch(/FAIL {2}test_reads_pyproject_with_tomllib/);
    expect(d11.consoleLog).toBe(join(work, 'python/cells/debian-11/attempt-1/console.log'));
    expect(existsSync(d11.consoleLog!)).toBe(true);
    expect(d11.collected).toEqual([{ path: '/work/results', host: join(work, 'python/cells/debian-11/attempt-1/files/work/results'), cases: 2 }]);
    expect(phases.filter((p) => p.startsWith('debian-12'))).toEqual(['debian-12 boot', 'debian-12 push', 'debian-12 run', 'debian-12 pull']);
    for (const c of python.cells) expect(c.durations).toMatchObject({ boot: expect.any(Number), push: expect.any(Number), run: expect.any(Number), pull: expect.any(Number) });
    expect(guestDirs()).toEqual([]);
  });

  it("kvmtest matrix runs the suite with the host's Node.js in every guest, exit code 1, table, JSON and JUnit", async () => {
    const out = join(work, 'node');
    const result = await execa('node', [cli, 'matrix', '--config', 'kvmtest.node.json', '--out', out, '--reporter', 'html', '--capsule', 'never'], { cwd: sample, reject: false, env: { CI: 'true' } });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/✖ failed +debian-11 +Debian GNU\/Linux 11 \(bullseye\) +1 +1\/2 passed/);
    expect(result.stderr).toMatch(/✔ passed +debian-13 +Debian GNU\/Linux 13 \(trixie\) +0 +2\/2 passed/);
    expect(result.stderr).toMatch(/✖ debian-11 › has glibc 2\.34 or newer: glibc 2\.31 is older than 2\.34/);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as MatrixReport;
    expectPerOsDifference(report, 'has glibc 2.34 or newer', 'runs on linux');
    expect(report.cells.map((c) => c.guest?.node)).toEqual([process.version, process.version, process.version]);
    expect(readFileSync(join(out, 'junit.xml'), 'utf8')).toBe(toJUnit(report));
    // the HTML report, as a browser shows it: the failing cell and its case's message, a working console link
    const page = await renderedReport(join(out, 'index.html'));
    expect(page.grid).toEqual(['debian-11 failed', 'debian-12 passed', 'debian-13 passed']);
    expect(page.failedMessages.join('\n')).toMatch(/glibc 2\.31 is older than 2\.34/);
    expect(page.consoleLinks).toEqual(['debian-11', 'debian-12', 'debian-13'].map((id) => `cells/${id}/attempt-1/console.log`));
    for (const href of page.consoleLinks) expect(existsSync(join(out, href!))).toBe(true);
  });

  it('--shard 1/2 and 2/2, merged, give the unsharded totals', async () => {
    const out = join(work, 'shards');
    const shard = (i: number) => execa('node', [cli, 'matrix', '--shard', `${i}/2`, '--out', out, '--reporter', 'junit', '--capsule', 'never'], { cwd: sample, reject: false, env: { CI: 'true' } });
    expect((await shard(1)).exitCode).toBe(1); // debian-11 and debian-13
    expect((await shard(2)).exitCode).toBe(0); // debian-12
    const merged = await execa(
      'node',
      [cli, 'merge', join(out, 'shard-1-of-2.json'), join(out, 'shard-2-of-2.json'), '--json', join(out, 'merged.json'), '--junit', join(out, 'merged.xml'), '--html', join(out, 'merged.html')],
      {
        reject: false,
        env: { CI: 'true' },
      },
    );
    expect(merged.exitCode).toBe(1);
    const report = JSON.parse(readFileSync(join(out, 'merged.json'), 'utf8')) as MatrixReport;
    expect(report.shards).toEqual(['1/2', '2/2']);
    expect(report.totals).toEqual(python.totals);
    expect(brief(report)).toEqual(brief(python));
    expect(readFileSync(join(out, 'merged.xml'), 'utf8')).toMatch(/<testsuite name="debian-12"/);
    expect((await renderedReport(join(out, 'merged.html'))).grid).toEqual(['debian-11 failed', 'debian-12 passed', 'debian-13 passed']);
    // a shard alone is not the matrix: the missing cells are errors
    const alone = await execa('node', [cli, 'merge', join(out, 'shard-2-of-2.json')], { reject: false });
    expect(alone.exitCode).toBe(1);
    expect(alone.stderr).toMatch(/SHARD_MISSING/);
  });
});

describe('scheduling on real guests', () => {
  it('a timed-out, a failing and a flaky cell neither stop nor spoil the others; retries make flaky', async () => {
    const report = await runMatrix({
      capsule: 'never',
      images: ['debian-12'],
      vary: { mode: ['pass', 'fail', 'flaky', 'hang'] },
      run: 'case "$KVMTEST_MODE" in pass) exit 0;; fail) exit 3;; flaky) [ "$KVMTEST_ATTEMPT" -ge 2 ];; hang) sleep 600;; esac',
      retries: 1,
      timeout: '40s',
      concurrency: 2,
      outDir: join(work, 'sched'),
    });
    expect(report.cells.map((c) => [c.id, c.status, c.attempts.map((a) => a.status).join(',')])).toEqual([
      ['debian-12/mode=pass', 'passed', 'passed'],
      ['debian-12/mode=fail', 'failed', 'failed,failed'],
      ['debian-12/mode=flaky', 'flaky', 'failed,passed'],
      ['debian-12/mode=hang', 'timeout', 'timeout,timeout'],
    ]);
    expect(cell(report, 'debian-12/mode=hang').error).toMatchObject({ code: 'CELL_TIMEOUT' });
    expect(report.totals).toMatchObject({ passed: 1, failed: 1, flaky: 1, timeout: 1 });
    expect(guestDirs()).toEqual([]);
  });

  it('fail-fast skips the cells not yet started', async () => {
    const report = await runMatrix({ capsule: 'never', images: ['debian-12'], vary: { step: [1, 2, 3] }, run: 'exit 1', failFast: true, concurrency: 1, outDir: join(work, 'ff') });
    expect(report.cells.map((c) => c.status)).toEqual(['failed', 'skipped', 'skipped']);
    expect(report.cells[1]!.error?.message).toBe('not run: fail-fast after debian-12/step=1 failed');
  });
});
