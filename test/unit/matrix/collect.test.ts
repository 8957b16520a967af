/**
 * Issue 22: `collect` appended every file's cases with no budget. The files a cell pulled are parsed
 * one by one into the cell's budget (which draws on the run's).
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { parseCollected } from '../../../src/matrix/cell.js';
import { CaseBudget, CaseCollector, CELL_CASE_LIMITS, RUN_CASE_LIMITS } from '../../../src/results/budget.js';
import { parseResults } from '../../../src/results/parse.js';

// parsed in-process: the worker is a build entry, and this is about what collect keeps
vi.mock('../../../src/results/file.js', () => ({ parseResultFile: async (path: string, name: string) => parseResults(await readFile(path, 'utf8'), name) }));

const dir = await mkdtemp(join(tmpdir(), 'kvmtest-unit-collect-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A pulled directory of `files` JUnit files with `n` cases each. */
async function pulled(name: string, files: number, n: number, suite = 's'): Promise<string> {
  const host = join(dir, name);
  await mkdir(host, { recursive: true });
  for (let f = 0; f < files; f++) await writeFile(join(host, `r${f}.xml`), `<testsuite name="${suite}">${'<testcase name="t"/>'.repeat(n)}</testsuite>`);
  return host;
}

describe('collect: the cases a cell keeps', () => {
  it('two files of 60,000 cases: the cell keeps 100,000 and one RESULT_TOO_LARGE case for the rest', async () => {
    const host = await pulled('count', 2, 60_000);
    const kept = new CaseCollector(new CaseBudget('cell', CELL_CASE_LIMITS, new CaseBudget('run', RUN_CASE_LIMITS)));
    expect(await parseCollected(host, '/work/results', kept)).toBe(100_000);
    expect(kept.cases).toHaveLength(100_001);
    expect(kept.cases.at(-1)).toMatchObject({ name: '20000 more cases not kept', status: 'error', file: '/work/results/r1.xml' });
    expect(kept.cases.at(-1)!.message).toContain('RESULT_TOO_LARGE');
  });

  it('long suite paths: the cell stops at its characters, long before its count', async () => {
    const host = await pulled('chars', 8, 10_000, 'x'.repeat(1000));
    const kept = new CaseCollector(new CaseBudget('cell', CELL_CASE_LIMITS));
    await parseCollected(host, '/w', kept);
    const chars = kept.cases.reduce((sum, c) => sum + c.name.length + c.suite.length + c.file.length, 0);
    expect(chars).toBeLessThanOrEqual(CELL_CASE_LIMITS.chars + 1000);
    expect(kept.cases.length).toBeLessThan(80_000);
    expect(kept.cases.at(-1)!.message).toMatch(/64 Mi characters of case text per cell/);
  });
});
