/**
 * Issue 22: one budget of parsed cases per run, shared by every cell: runMatrix hands each attempt a
 * cell budget drawn on the run's, and gives back what a superseded attempt took. The attempts are
 * stand-ins (no guest boots): each keeps 100,000 cases through the budget it is handed.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { AttemptOutcome, CellContext } from '../../../src/matrix/cell.js';
import { runMatrix } from '../../../src/matrix/run.js';
import type { CellSpec } from '../../../src/matrix/types.js';
import { CaseCollector } from '../../../src/results/budget.js';

vi.mock('../../../src/image/resolve.js', () => ({ resolveImage: async () => ({}) }));
vi.mock('../../../src/host/accel.js', async (real) => ({ ...(await real<object>()), probeKvmOnce: async () => ({ usable: false, reason: 'unit test' }) }));
vi.mock('../../../src/matrix/cell.js', async (real) => {
  const cell = await real<typeof import('../../../src/matrix/cell.js')>();
  return {
    ...cell,
    // with retries the first attempt of a cell exits 1, a later one 0; each keeps 100,000 cases, judged as a real attempt is
    runCellAttempt: async (_spec: CellSpec, ctx: CellContext): Promise<AttemptOutcome> => {
      const kept = new CaseCollector(ctx.budget!);
      kept.add(Array.from({ length: 100_000 }, () => ({ name: 't', suite: '', status: 'passed' as const, file: '/r.xml' })));
      const exitCode = ctx.attempt === 1 && ctx.options.retries > 0 ? 1 : 0;
      const status = cell.judgeAttempt({ exitCode, cases: kept.cases, timedOut: false });
      return { status, exitCode, durationMs: 1, durations: { total: 1 }, stdoutTail: '', stderrTail: '', outDir: ctx.outDir, collected: [], cases: kept.cases };
    },
  };
});

const out = await mkdtemp(join(tmpdir(), 'kvmtest-unit-run-budget-'));
afterAll(() => rm(out, { recursive: true, force: true }));

describe('runMatrix: one case budget for the run', () => {
  const options = { images: ['debian-11', 'debian-12', 'debian-13'], run: 'true', capsule: 'never' as const, concurrency: 1, outDir: out, boot: { accel: 'tcg' as const } };

  it('three cells of 100,000 cases: the run keeps 250,000, the third cell one coded case for the rest', async () => {
    const report = await runMatrix(options);
    expect(report.cells.map((c) => c.cases.length)).toEqual([100_000, 100_000, 50_001]);
    const coded = report.cells[2]!.cases.at(-1)!;
    expect(coded).toMatchObject({ name: '50000 more cases not kept', status: 'error' });
    expect(coded.message).toMatch(/^RESULT_TOO_LARGE: kvmtest keeps at most 250000 cases or 128 Mi characters of case text per run/);
    expect(report.cells[2]!.status).toBe('failed');
    expect(report.totals.cases.total).toBe(250_001);
  });

  it("a retried cell's first attempt gives its cases back: only the attempt the report keeps counts", async () => {
    const report = await runMatrix({ ...options, retries: 1 });
    expect(report.cells.map((c) => c.status)).toEqual(['flaky', 'flaky', 'failed']);
    expect(report.cells.map((c) => c.cases.length)).toEqual([100_000, 100_000, 50_001]);
  });
});
