import { createHash } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { availableParallelism, freemem, hostname, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import createDebug from 'debug';
import { resolveBootOptions } from '../guest/options.js';
import { chooseAccel, probeKvmOnce } from '../host/accel.js';
import { resolveImage } from '../image/resolve.js';
import { CaseBudget, CELL_CASE_LIMITS, RUN_CASE_LIMITS } from '../results/budget.js';
import { formatTransfer } from '../util/progress.js';
import { type AttemptOutcome, cellBootOptions, runCellAttempt } from './cell.js';
import { decideConcurrency, guestFootprintMiB, MemoryBudget } from './concurrency.js';
import { findHostNode } from './host-node.js';
import { type ResolvedMatrixOptions, resolveMatrixOptions } from './options.js';
import { runPool } from './schedule.js';
import { formatShard, shardCells } from './shard.js';
import { buildReport } from './totals.js';
import type { CellResult, CellSpec, MatrixEvent, MatrixOptions, MatrixReport } from './types.js';

const debug = createDebug('kvmtest:matrix');

/**
 * Runs one job in every cell of the matrix (images × axes, this shard's part of it), in parallel
 * as far as the host holds, and returns the report. Cell failures are results, never exceptions:
 * it throws only for bad options. Every guest is disposed whatever happens.
 */
export async function runMatrix(options: MatrixOptions): Promise<MatrixReport> {
  const startedAt = new Date();
  const t0 = performance.now();
  const resolved = resolveMatrixOptions(options);
  const all = resolved.cells;
  const cells = shardCells(all, resolved.shard);
  const costs = new Map(
    cells.map((cell) => {
      const boot = resolveBootOptions(cellBootOptions(cell, resolved));
      return [cell.id, { cpus: boot.cpus, memoryMiB: boot.memoryMiB }];
    }),
  );
  const emit = (event: MatrixEvent) => {
    try {
      resolved.onEvent?.(event);
    } catch (error) {
      debug('onEvent threw: %O', error);
    }
  };
  const host = { cpus: availableParallelism(), freeMemMiB: Math.floor(freemem() / 2 ** 20), totalMemMiB: Math.floor(totalmem() / 2 ** 20) };
  const decision = decideConcurrency(resolved.concurrency, host, [...costs.values()]);
  debug('%d of %d cells, %s', cells.length, all.length, decision.reason);
  const outDir = resolve(resolved.outDir ?? (await mkdtemp(join(tmpdir(), 'kvmtest-matrix-'))));

  // fetch or build the images one at a time, before any guest competes for the cores or the network
  for (const name of new Set(cells.map((c) => c.image))) {
    emit({ type: 'prepare', message: `image ${name}` });
    let said = 0;
    await resolveImage(name, {
      onLine: (line) => emit({ type: 'prepare', message: line }),
      onProgress: (p) => {
        if (Date.now() - said < 2000 && p.received !== p.total) return;
        said = Date.now();
        emit({ type: 'prepare', message: `image ${name}: downloading ${formatTransfer(p.received, p.total)}` });
      },
      ...(resolved.signal ? { signal: resolved.signal } : {}),
    });
  }
  const hostNode = resolved.node === 'host' ? await findHostNode() : undefined;

  const failFast = new AbortController();
  const signal = resolved.signal ? AbortSignal.any([resolved.signal, failFast.signal]) : failFast.signal;
  let firstFailure: string | undefined;
  // one budget of parsed cases for the whole run, drawn on by every cell's attempts
  const caseBudget = new CaseBudget('run', RUN_CASE_LIMITS);
  emit({ type: 'start', cells, concurrency: decision.concurrency, shard: formatShard(resolved.shard) });

  const runCell = async (cell: CellSpec): Promise<CellResult> => {
    const attempts: AttemptOutcome[] = [];
    let budget: CaseBudget | undefined;
    for (let attempt = 1; attempt <= resolved.retries + 1; attempt++) {
      // the report keeps the last attempt's cases only: an earlier attempt's are dropped, their share back to the run
      budget?.release();
      const previous = attempts.at(-1);
      if (previous) previous.cases = [];
      budget = new CaseBudget('cell', CELL_CASE_LIMITS, caseBudget);
      const outcome = await runCellAttempt(
        cell,
        {
          options: resolved,
          ...(hostNode ? { hostNode } : {}),
          outDir: attemptDir(outDir, cell.id, attempt),
          attempt,
          onPhase: (phase) => emit({ type: 'phase', cell, phase, attempt }),
          onOutput: (stream, line) => emit({ type: 'output', cell, stream, line }),
          budget,
        },
        resolved.timeoutMs,
        signal,
      );
      attempts.push(outcome);
      if (outcome.status === 'passed' || signal.aborted) break;
    }
    const result = finish(cell, attempts, failFast.signal.aborted && !resolved.signal?.aborted ? firstFailure : undefined);
    if (resolved.failFast && ['failed', 'error', 'timeout'].includes(result.status) && !failFast.signal.aborted) {
      firstFailure = cell.id;
      failFast.abort(new Error(`fail-fast: ${cell.id} ${result.status}`));
    }
    emit({ type: 'cell-done', result });
    return result;
  };
  const skipped = (cell: CellSpec): CellResult => {
    const result = skippedCell(cell, firstFailure ? `not run: fail-fast after ${firstFailure} failed` : 'not run: the matrix was cancelled');
    emit({ type: 'cell-done', result });
    return result;
  };
  const results = await runPool(
    cells,
    {
      concurrency: decision.concurrency,
      memory: new MemoryBudget(decision.memoryBudgetMiB),
      footprint: (cell) => guestFootprintMiB(costs.get(cell.id)!),
      signal,
    },
    runCell,
    skipped,
  );

  const accel = chooseAccel(resolveBootOptions(cellBootOptions(all[0]!, resolved)).accel, await probeKvmOnce()).accel;
  const report = buildReport({
    matrixKey: matrixKey(all, resolved),
    allCellIds: all.map((c) => c.id),
    shards: [formatShard(resolved.shard)],
    startedAt: startedAt.toISOString(),
    durationMs: Math.round(performance.now() - t0),
    host: { hostname: hostname(), accel, cpus: host.cpus, memoryMiB: host.totalMemMiB, node: process.version },
    cells: results,
  });
  emit({ type: 'end', report });
  return report;
}

/** Each attempt of a cell has its own directory, so a retry is judged on its own files: <out>/cells/<cell>/attempt-<n>. Pure. */
export function attemptDir(outDir: string, cellId: string, attempt: number): string {
  const slug = cellId.replace(/[^A-Za-z0-9._=-]+/g, '_').replace(/^\.+$/, '_');
  return join(outDir, 'cells', slug, `attempt-${attempt}`);
}

/** Same cells and same command → same key, so shards of one matrix can be merged and others refused. */
export function matrixKey(cells: CellSpec[], options: Pick<ResolvedMatrixOptions, 'run'>): string {
  return createHash('sha256')
    .update(JSON.stringify({ cells: cells.map((c) => c.id), run: options.run }))
    .digest('hex')
    .slice(0, 16);
}

/** The cell's result from its attempts: the last one's details, 'flaky' for a pass after a failure. */
function finish(cell: CellSpec, attempts: AttemptOutcome[], cancelledBy: string | undefined): CellResult {
  const last = attempts.at(-1)!;
  let status: CellResult['status'] = last.status === 'passed' && attempts.length > 1 ? 'flaky' : last.status;
  let error = last.error;
  // a cell cut short because another failed first is reported as not run, not as its own failure
  if (cancelledBy && last.status === 'error' && last.exitCode === null) {
    status = 'skipped';
    error = { code: 'ABORTED', message: `cancelled: fail-fast after ${cancelledBy} failed` };
  }
  const { durationMs: _d, ...details } = last;
  // a flaky cell's capsule is its last failing attempt's (the capsule directory holds that one)
  const capsule = [...attempts].reverse().find((a) => a.capsule)?.capsule;
  return {
    ...cell,
    ...details,
    ...(capsule ? { capsule } : {}),
    status,
    ...(error ? { error } : {}),
    attempts: attempts.map((a) => ({ status: a.status, exitCode: a.exitCode, ...(a.error ? { error: { code: a.error.code, message: a.error.message } } : {}), durationMs: a.durationMs })),
  };
}

function skippedCell(cell: CellSpec, reason: string): CellResult {
  return { ...cell, status: 'skipped', exitCode: null, error: { code: 'ABORTED', message: reason }, durations: { total: 0 }, attempts: [], stdoutTail: '', stderrTail: '', cases: [] };
}
