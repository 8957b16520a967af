/**
 * Issue 22: the report was one JSON.stringify; past V8's string limit no JSON, JUnit or HTML report
 * was written for any cell. Reports are now written as streams, piece by piece with backpressure,
 * and a report that still cannot be written whole is written reduced, with the code.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { MatrixReport } from '../../../src/matrix/types.js';
import { htmlChunks, toHtml } from '../../../src/report/html.js';
import { reportJson } from '../../../src/report/json.js';
import { junitChunks, toJUnit } from '../../../src/report/junit.js';
import { reducedReport, writeChunksToFile, writeReportFile } from '../../../src/report/write.js';
import { debian11, full, report } from '../fixtures/sample-run.js';

const dir = await mkdtemp(join(tmpdir(), 'kvmtest-unit-write-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Writes `chunks` to `path`, sampling the heap as it goes; the most it grew above where it started. */
async function heapGrowthWriting(chunks: Iterable<string>, path: string): Promise<number> {
  const before = process.memoryUsage().heapUsed;
  let peak = before;
  const sample = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().heapUsed);
  }, 2);
  try {
    await writeChunksToFile(chunks, path);
  } finally {
    clearInterval(sample);
  }
  return Math.max(peak, process.memoryUsage().heapUsed) - before;
}

describe('reports written as streams', () => {
  it('the JSON pieces are exactly JSON.stringify(report, null, 2), and the page and JUnit pieces exactly toHtml and toJUnit', () => {
    const odd = report([{ ...debian11, axes: {}, collected: [], signal: undefined, cases: [...debian11.cases, { name: 'n', suite: '', status: 'passed', file: '' }] }]);
    for (const r of [full, odd, report([])]) {
      expect([...reportJson(r)].join('')).toBe(`${JSON.stringify(r, null, 2)}\n`);
      expect([...junitChunks(r)].join('')).toBe(toJUnit(r));
      expect([...htmlChunks(r, { baseDir: '/out' })].join('')).toBe(toHtml(r, { baseDir: '/out' }));
    }
  });

  it('3 cells × 100,000 cases with long suite names: the JSON and JUnit files are written with the heap bounded, and the JSON parses back', async () => {
    const suite = `suite ${'s'.repeat(300)}`;
    const file = `/work/${'p'.repeat(200)}/junit.xml`;
    const cells = [1, 2, 3].map((i) => ({
      ...debian11,
      id: `debian-${i}`,
      image: `debian-${i}`,
      cases: Array.from({ length: 100_000 }, (_, j) => ({ name: `t${j}`, suite, status: 'failed' as const, message: 'boom', file })),
    }));
    const big = report(cells);
    const json = join(dir, 'report.json');
    // measured: ~14 MiB above the report itself (JSON.stringify of it: ~383 MiB; with 1,500-character suites it throws Invalid string length)
    expect(await heapGrowthWriting(reportJson(big), json)).toBeLessThan(100 * 2 ** 20);
    expect((await stat(json)).size).toBeGreaterThan(3 * 100_000 * suite.length);
    const back = JSON.parse(await readFile(json, 'utf8')) as MatrixReport;
    expect(back.cells.map((c) => c.cases.length)).toEqual([100_000, 100_000, 100_000]);
    expect(back.cells[2]!.cases.at(-1)).toEqual(big.cells[2]!.cases.at(-1));
    expect(back.totals).toEqual(big.totals);
    await rm(json);

    const junit = join(dir, 'junit.xml');
    expect(await heapGrowthWriting(junitChunks(big), junit)).toBeLessThan(100 * 2 ** 20);
    expect((await stat(junit)).size).toBeGreaterThan(3 * 100_000 * suite.length);
    await rm(junit);
  }, 60_000);

  it('a report that cannot be rendered whole is written reduced: every cell, one coded case per cell, the code on stderr', async () => {
    const path = join(dir, 'reduced.json');
    const warnings: string[] = [];
    // stands for V8's `Invalid string length` while a piece is made
    const render = (r: MatrixReport) => {
      if (r.cells.some((c) => c.cases.length > 1)) throw new RangeError('Invalid string length');
      return reportJson(r);
    };
    expect(await writeReportFile(path, full, render, (line) => warnings.push(line))).toBe(false);
    const written = JSON.parse(await readFile(path, 'utf8')) as MatrixReport;
    expect(written.cells.map((c) => c.id)).toEqual(full.cells.map((c) => c.id));
    expect(written.cells[0]!.cases).toEqual([expect.objectContaining({ name: '2 cases not written', status: 'error', message: expect.stringMatching(/^RESULT_TOO_LARGE: .*Invalid string length/) })]);
    expect(written.cells[0]!.stderrTail).toBe(full.cells[0]!.stderrTail);
    expect(written.ok).toBe(false);
    expect(warnings).toEqual([expect.stringMatching(/^kvmtest: RESULT_TOO_LARGE: .*reduced.json could not be written whole/)]);
    expect(reducedReport(full, 'HOST_IO', 'ENOSPC').cells[0]!.cases[0]!.message).toMatch(/^HOST_IO: /);
  });

  it('a report file that cannot be written at all is HOST_IO naming the path', async () => {
    const path = join(dir, 'no/such/dir/report.json');
    await expect(writeReportFile(path, full, reportJson, () => {})).rejects.toMatchObject({ code: 'HOST_IO', message: expect.stringContaining(path) });
  });

  it('a whole report written returns true and warns of nothing', async () => {
    const path = join(dir, 'whole.json');
    const warnings: string[] = [];
    expect(await writeReportFile(path, full, reportJson, (line) => warnings.push(line))).toBe(true);
    expect(await readFile(path, 'utf8')).toBe(`${JSON.stringify(full, null, 2)}\n`);
    expect(warnings).toEqual([]);
  });
});
