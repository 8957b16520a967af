import { mkdir, stat } from 'node:fs/promises';
import createDebug from 'debug';
import type { AgentClient } from '../agent/client.js';
import { GuestProcess } from '../agent/exec.js';
import { push } from '../agent/transfer.js';
import { KvmtestError, kvmtestError } from '../errors.js';
import { cachePath } from '../image/cache.js';
import { type BackingLink, baseChain } from '../image/disk.js';
import type { MachinePlan } from '../machine/plan.js';
import { incomingOf, startMachine } from '../machine/start.js';
import type { Progress } from '../util/progress.js';
import { TailBuffer } from '../util/tail.js';
import { captureMachine } from './capture.js';
import { type SetupStep, setupLabel, setupLayerKey, treeDigest } from './layer-key.js';
import { readSnapshot, removeSnapshot, type Snapshot, snapshotPaths, touchSnapshot, withSnapshotLock, writeMeta } from './store.js';

const debug = createDebug('kvmtest:layer');
/** Lines of the setup's output a failure shows. */
const FAILURE_TAIL_LINES = 40;
/** …and at most this many characters of it: the guest may print one endless line. */
const FAILURE_TAIL_CHARS = 8000;

/** A cached setup layer, and the disk chain beneath its disk layer (its parent snapshot's disk, then the base's). */
export interface Layer {
  snapshot: Snapshot;
  chain: BackingLink[];
}

/**
 * The setup layer for a step on a warm snapshot, made now if the cache lacks it: a guest restored
 * from the snapshot gets the pushes and runs the command; on success it is captured into the cache,
 * keyed by the snapshot and the step's content. Concurrent callers (other processes too) make it once.
 * A failing step is SETUP_FAILED with its output and is not cached.
 */
export async function ensureSetupLayer(plan: MachinePlan, parent: Snapshot, step: SetupStep): Promise<Layer> {
  const key = setupLayerKey(parent.key, step, await Promise.all(step.push.map((p) => treeDigest(p.source))));
  const chain = [{ path: parent.disk, format: 'qcow2' as const }, ...baseChain(plan.base)];
  const ramBytes = plan.opts.memoryMiB * 2 ** 20;
  // a layer is only as good as the parent it was made on: a parent made anew (same key) invalidates it
  const usable = async () => {
    const found = await readSnapshot(key, ramBytes);
    if (found && found.meta.layer?.parent === parent.key && found.meta.layer.parentCreatedAt === parent.meta.createdAt) return found;
    return undefined;
  };
  const ready = await usable();
  if (ready) {
    await touchSnapshot(parent);
    return { snapshot: ready, chain };
  }
  return withSnapshotLock(key, async () => {
    const existing = await usable();
    if (existing) return { snapshot: existing, chain };
    await removeSnapshot(key); // stale, or half-made by a builder that died
    try {
      return { snapshot: await makeLayer(plan, parent, step, key, chain), chain };
    } catch (error) {
      await removeSnapshot(key);
      throw error;
    }
  });
}

async function makeLayer(plan: MachinePlan, parent: Snapshot, step: SetupStep, key: string, chain: BackingLink[]): Promise<Snapshot> {
  const started = performance.now();
  const label = setupLabel(step);
  const name = `kvmtest-setup-${key.slice(0, 8)}`;
  plan.progress.phase(`setup: restoring the snapshot for "${label}" (once per setup and content)`);
  const machine = await startMachine(plan, { name, incoming: incomingOf(parent) });
  try {
    await runSetupStep(machine.agent, step, plan.progress);
    const setupMs = performance.now() - started;
    plan.progress.phase('setup: capturing the layer');
    const paths = snapshotPaths(key);
    await cachePath('snapshots');
    await mkdir(paths.dir, { mode: 0o700 });
    const captured = await captureMachine(plan, machine, paths.dir);
    if (captured.chain.length !== chain.length) throw kvmtestError('INTERNAL', `setup layer ${key}: its disk sits on ${captured.chain.length} layers, expected ${chain.length}`);
    debug('layer %s made: setup %d ms, capture %d ms', key, setupMs, captured.tookMs);
    return await writeMeta(paths, {
      key,
      createdAt: new Date().toISOString(),
      baseImage: plan.base.path,
      stateBytes: captured.stateBytes,
      ramBytes: (await stat(paths.ram)).size,
      saveMs: captured.tookMs,
      layer: { parent: parent.key, label, setupMs, parentCreatedAt: parent.meta.createdAt },
    });
  } finally {
    await machine.stop('kill');
  }
}

/**
 * Pushes a step's files and runs its command on a running guest, its output shown as progress; a
 * command that fails or does not finish is SETUP_FAILED with its last output.
 */
export async function runSetupStep(agent: AgentClient, step: SetupStep, progress: Progress): Promise<void> {
  const label = setupLabel(step);
  for (const { source, dest } of step.push) {
    progress.phase(`setup: pushing ${source} → ${dest}`);
    await push(agent, source, dest).catch((error: unknown) => {
      throw error instanceof KvmtestError ? Object.assign(error, { message: `setup: pushing ${source} → ${dest} failed: ${error.message}` }) : error;
    });
  }
  progress.phase(`setup: running ${label}`);
  const target = Array.isArray(step.run) ? { argv: step.run } : { shell: step.run };
  // the output is the guest's: shown line by line, its tail kept bounded, nothing else buffered
  const child = new GuestProcess(agent, target, { env: step.env, ...(step.cwd ? { cwd: step.cwd } : {}), timeoutMs: step.timeoutMs, buffer: false }, { live: true });
  const tail = new TailBuffer(FAILURE_TAIL_LINES, FAILURE_TAIL_CHARS);
  const shown = (async () => {
    for await (const line of child.lines()) {
      tail.push(line);
      progress.update(line.slice(0, 200));
    }
  })();
  const result = await child.then(undefined, (error: unknown) => {
    throw error instanceof KvmtestError ? kvmtestError('SETUP_FAILED', `setup "${label}" did not finish: ${error.message}`, { cause: error }) : error;
  });
  await shown.catch(() => {});
  if (result.exitCode !== 0) throw kvmtestError('SETUP_FAILED', `setup "${label}" exited with ${result.exitCode ?? result.signal}. Its last output:\n${tail.toString()}`);
}
