import { copyFile, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { dirname, join, posix, resolve } from 'node:path';
import createDebug from 'debug';
import type { PullResult } from '../agent/transfer.js';
import { asKvmtestError, isKvmtestError } from '../errors.js';
import { boot } from '../guest/boot.js';
import type { Guest } from '../guest/guest.js';
import type { BootOptions } from '../guest/options.js';
import { DEFAULT_PATH } from '../protocol/shared.js';
import { ARCH_MACHINES, defaultArch, isMachineArch } from '../qemu/arch.js';
import { CaseBudget, CaseCollector, CELL_CASE_LIMITS } from '../results/budget.js';
import { parseResultFile } from '../results/file.js';
import { LineSplitter } from '../util/lines.js';
import { TailBuffer } from '../util/tail.js';
import { saveCellCapsule, wantsCapsule } from './capsule.js';
import { type HostNode, installHostNode } from './host-node.js';
import type { ResolvedMatrixOptions } from './options.js';
import type { AxisValue, CellAttempt, CellPhase, CellResult, CellSpec, MatrixOptions, TestCase } from './types.js';

const debug = createDebug('kvmtest:matrix');

/** Axes that are boot options; every other axis reaches the run as $KVMTEST_<NAME>. */
const BOOT_AXES = ['arch', 'cpus', 'memory', 'accel', 'boot', 'firmware', 'cpu'] as const;

export interface CellContext {
  options: ResolvedMatrixOptions;
  hostNode?: HostNode;
  /** This attempt's own host directory (emptied first): collected files, console log. */
  outDir: string;
  /** 1 for the first attempt; the run sees it as $KVMTEST_ATTEMPT. */
  attempt: number;
  onPhase: (phase: CellPhase) => void;
  onOutput: (stream: 'stdout' | 'stderr', line: string) => void;
  /** This attempt's budget of parsed cases (its parent: the run's, shared by every cell); default a cell's own. */
  budget?: CaseBudget;
}

/** One attempt's full outcome: the attempt summary plus what the last attempt reports. */
export type AttemptOutcome = CellAttempt & Omit<CellResult, keyof CellSpec | 'status' | 'attempts'>;

/**
 * The boot options of a cell: the matrix's shared ones with the cell's boot axes on top. With
 * capsules on, a named CPU model (the architecture's portable one) unless one was given, so that a
 * capsule restores on another host. Pure.
 */
export function cellBootOptions(cell: CellSpec, options: Pick<MatrixOptions, 'boot' | 'snapshot' | 'setup' | 'capsule'>): BootOptions {
  const fromAxes: Record<string, AxisValue> = {};
  for (const name of BOOT_AXES) if (cell.axes[name] !== undefined) fromAxes[name] = cell.axes[name];
  const boot: BootOptions = { ...options.boot, ...(fromAxes as Partial<BootOptions>), image: cell.image, snapshot: options.snapshot ?? true, ...(options.setup ? { setup: options.setup } : {}) };
  const arch = boot.arch ?? defaultArch();
  // an unknown arch is boot()'s to refuse (INVALID_OPTION), in the cell
  const portable = isMachineArch(arch) ? ARCH_MACHINES[arch].portableCpu : undefined;
  if (options.capsule !== undefined && options.capsule !== 'never' && boot.cpu === undefined && portable) boot.cpu = portable;
  return boot;
}

/** The run's environment: the user's, the cell's identity and attempt, each axis as KVMTEST_<AXIS>. Pure. */
export function cellEnv(cell: CellSpec, env: Record<string, string> = {}, attempt = 1): Record<string, string> {
  const out: Record<string, string> = { ...env, KVMTEST_CELL: cell.id, KVMTEST_IMAGE: cell.image, KVMTEST_ATTEMPT: String(attempt) };
  for (const [name, value] of Object.entries(cell.axes)) out[`KVMTEST_${name.toUpperCase()}`] = String(value);
  return out;
}

/** passed / failed / error / timeout from what happened. Pure. */
export function judgeAttempt(outcome: { exitCode: number | null; cases: TestCase[]; error?: { code: string } | undefined; timedOut: boolean }): CellAttempt['status'] {
  if (outcome.timedOut) return 'timeout';
  if (outcome.error) return 'error';
  if (outcome.exitCode !== 0 || outcome.cases.some((c) => c.status === 'failed' || c.status === 'error')) return 'failed';
  return 'passed';
}

/**
 * Runs one attempt of a cell: boot (from the warm snapshot), the host's node, push, run, pull and
 * parse; the guest is disposed whatever happens. Never throws: failures become the outcome.
 */
export async function runCellAttempt(cell: CellSpec, ctx: CellContext, timeoutMs: number, outer?: AbortSignal): Promise<AttemptOutcome> {
  const started = performance.now();
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = outer ? AbortSignal.any([outer, timeout]) : timeout;
  const durations: AttemptOutcome['durations'] = { total: 0 };
  const stdout = new TailBuffer();
  const stderr = new TailBuffer();
  const collected: NonNullable<CellResult['collected']> = [];
  const kept = new CaseCollector(ctx.budget ?? new CaseBudget('cell', CELL_CASE_LIMITS));
  const cases = kept.cases;
  let exitCode: number | null = null;
  let exitSignal: string | undefined;
  let error: AttemptOutcome['error'];
  let vm: Guest | undefined;
  let guest: AttemptOutcome['guest'];
  let consoleLog: string | undefined;
  let capsule: AttemptOutcome['capsule'];
  const capsules = ctx.options.capsule;
  // the console log is copied out before the guest goes (a capsule's save disposes it too)
  const keepConsole = async () => {
    if (!vm || consoleLog) return;
    consoleLog = join(ctx.outDir, 'console.log');
    await copyFile(vm.info.consolePath, consoleLog).catch(() => (consoleLog = undefined));
  };
  /** Saves the guest whole into <cell>/capsule when the cell's status asks for it (once); the guest goes. */
  const takeCapsule = async (status: CellAttempt['status']) => {
    if (!vm || capsule || !wantsCapsule(capsules, status)) return;
    ctx.onPhase('capsule');
    const t = performance.now();
    const notes = {
      cell: { id: cell.id, status, attempt: ctx.attempt },
      command: ctx.options.run,
      env: runEnv,
      ...(ctx.options.cwd ? { cwd: ctx.options.cwd } : {}),
      durations: phaseDurations(durations, running),
    };
    capsule = await saveCellCapsule(vm, dirname(ctx.outDir), notes, outer, ctx.options);
    durations.capsule = Math.round(performance.now() - t);
  };
  const runEnv = cellEnv(cell, ctx.options.env, ctx.attempt);
  /** The phase in progress (a timeout's capsule is taken during it). */
  let running: { name: string; t: number } | undefined;
  // a cancel disposes the guest at once, which fails whatever request is pending; a timeout first
  // saves the capsule (the run is not killed first: the capsule holds the hang as it was)
  let aborting: Promise<void> | undefined;
  const onAbort = () => {
    aborting = (async () => {
      if (timeout.aborted && !outer?.aborted) {
        await keepConsole();
        await takeCapsule('timeout');
      }
      await vm?.dispose();
    })();
  };
  signal.addEventListener('abort', onAbort, { once: true });
  const phase = async <T>(name: Exclude<CellPhase, 'queued' | 'done' | 'capsule'>, work: () => Promise<T>): Promise<T> => {
    signal.throwIfAborted();
    ctx.onPhase(name);
    const t = performance.now();
    running = { name, t };
    try {
      return await work();
    } finally {
      durations[name] = Math.round(performance.now() - t);
      running = undefined;
    }
  };
  try {
    // an attempt is judged on its own files only: a directory left by an earlier run goes first
    await rm(ctx.outDir, { recursive: true, force: true });
    await mkdir(ctx.outDir, { recursive: true });
    vm = await phase('boot', () => boot({ ...cellBootOptions(cell, ctx.options), signal }));
    const about: NonNullable<AttemptOutcome['guest']> = { os: vm.info.agent.os.prettyName ?? vm.info.agent.os.id ?? 'unknown', kernel: vm.info.agent.kernel };
    guest = about;
    let path = DEFAULT_PATH;
    if (ctx.options.node === 'host') {
      const hostNode = ctx.hostNode!;
      path = await phase('node', () => installHostNode(vm!, hostNode, signal));
      about.node = hostNode.version;
    }
    for (const [from, to] of Object.entries(ctx.options.mounts)) {
      await phase('push', () => vm!.mount(resolve(ctx.options.projectDir, from), to));
    }
    for (const [from, to] of Object.entries(ctx.options.push)) {
      await phase('push', () => vm!.push(resolve(ctx.options.projectDir, from), to));
    }
    const result = await phase('run', async () => {
      const child = vm!.spawn(typeof ctx.options.run === 'string' ? ['/bin/sh', '-c', ctx.options.run] : ctx.options.run, [], {
        env: { PATH: path, ...runEnv },
        ...(ctx.options.cwd ? { cwd: ctx.options.cwd } : {}),
        // with capsules on, a timeout must not kill the run before the capsule holds it
        ...(capsules === 'never' ? { signal } : outer ? { signal: outer } : {}),
        buffer: false,
      });
      for (const [name, tail] of [
        ['stdout', stdout],
        ['stderr', stderr],
      ] as const) {
        // lines capped at MAX_LINE_BYTES: a guest's endless line costs bounded memory
        const lines = new LineSplitter();
        const emit = (line: string) => {
          tail.push(line);
          ctx.onOutput(name, line);
        };
        child[name].on('data', (chunk: Buffer) => lines.push(chunk).forEach(emit));
        child[name].on('end', () => lines.end().forEach(emit));
      }
      return child;
    });
    exitCode = result.exitCode;
    exitSignal = result.signal ?? undefined;
    for (const path of ctx.options.collect) {
      await phase('pull', () => collect(vm!, path, ctx.outDir, collected, kept, signal));
    }
  } catch (caught) {
    error = describeError(caught, timeout.aborted ? timeoutMs : undefined);
    debug('%s: %s', cell.id, error.message);
  } finally {
    signal.removeEventListener('abort', onAbort);
    await aborting;
    if (vm) {
      await keepConsole();
      await takeCapsule(judgeAttempt({ exitCode, cases, error, timedOut: timeout.aborted && !outer?.aborted }));
      await vm.dispose();
    }
  }
  durations.total = Math.round(performance.now() - started);
  const status = judgeAttempt({ exitCode, cases, error, timedOut: timeout.aborted && !outer?.aborted });
  return {
    status,
    exitCode,
    ...(exitSignal ? { signal: exitSignal } : {}),
    ...(error ? { error } : {}),
    durationMs: durations.total,
    durations,
    stdoutTail: stdout.toString(),
    stderrTail: stderr.toString(),
    ...(consoleLog ? { consoleLog } : {}),
    outDir: ctx.outDir,
    ...(guest ? { guest } : {}),
    ...(capsule ? { capsule } : {}),
    collected,
    cases,
  };
}

/** The phases timed so far, the one in progress up to now (the total is not known yet). */
function phaseDurations(durations: AttemptOutcome['durations'], running: { name: string; t: number } | undefined): Record<string, number> {
  const { total: _, ...phases } = durations;
  return { ...(phases as Record<string, number>), ...(running ? { [running.name]: Math.round(performance.now() - running.t) } : {}) };
}

/** Pull refusals that concern one collected path only: recorded in `collected`, the cell goes on. */
const COLLECT_MISSES = new Set(['GUEST_IO', 'PULL_DEST_SYMLINK', 'PULL_DEST_NOT_EMPTY']);

/** Where a collected guest path lands under the attempt's `files/`: the path itself, never above it. Pure. */
export function collectTarget(outDir: string, guestPath: string): string {
  return join(outDir, 'files', posix.normalize(`/${guestPath}`).slice(1));
}

/**
 * Pulls one guest path into the attempt's directory and parses the result files in it, keeping
 * their cases as far as the budget goes. A path under a link an earlier collect brought (or
 * overlapping it) is refused by pull and recorded.
 */
async function collect(vm: Guest, guestPath: string, outDir: string, collected: NonNullable<CellResult['collected']>, kept: CaseCollector, signal: AbortSignal): Promise<void> {
  const host = collectTarget(outDir, guestPath);
  let pulled: PullResult;
  try {
    pulled = await vm.pull(guestPath, host, { signal });
  } catch (error) {
    if (isKvmtestError(error) && COLLECT_MISSES.has(error.code)) {
      collected.push({ path: guestPath, error: error.message });
      return;
    }
    throw error;
  }
  const found = await parseCollected(host, guestPath, kept);
  collected.push({ path: guestPath, host, cases: found, ...(pulled.droppedTotal > 0 ? { dropped: pulled.dropped } : {}) });
}

/** Parses the result files pulled from `guestPath` into `host`, file by file into `kept`; how many cases it kept. */
export async function parseCollected(host: string, guestPath: string, kept: CaseCollector): Promise<number> {
  let found = 0;
  for (const file of await filesUnder(host)) {
    const parsed = await parseResultFile(file, join(guestPath, file.slice(host.length)));
    if (parsed) found += kept.add(parsed);
  }
  return found;
}

async function filesUnder(path: string): Promise<string[]> {
  const info = await stat(path);
  if (!info.isDirectory()) return [path];
  const out: string[] = [];
  for (const entry of await readdir(path, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(join(entry.parentPath, entry.name));
  }
  return out.sort();
}

function describeError(error: unknown, timedOutAfterMs: number | undefined): NonNullable<AttemptOutcome['error']> {
  if (timedOutAfterMs !== undefined) return { code: 'CELL_TIMEOUT', message: `the cell did not finish within ${Math.round(timedOutAfterMs / 1000)} s` };
  const coded = asKvmtestError(error);
  return { code: coded.code, message: coded.message, ...(coded.consoleTail ? { consoleTail: coded.consoleTail } : {}) };
}
