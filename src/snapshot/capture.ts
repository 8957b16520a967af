import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, link, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import createDebug from 'debug';
import { dir as tmpDir } from 'tmp-promise';
import { KvmtestError, kvmtestError } from '../errors.js';
import { type BackingLink, createOverlay } from '../image/disk.js';
import { Machine } from '../machine/machine.js';
import { copyUefiVars, type MachinePlan, machineSpec, withFreePorts } from '../machine/plan.js';
import { track } from '../machine/registry.js';
import { DISK_NODE } from '../qemu/argv.js';
import { QmpClient, type QmpEvent } from '../qemu/qmp.js';
import { CREATE_NEW, writeNoFollow } from '../util/no-follow.js';
import { saveState } from './migrate.js';
import { checkRestorable } from './restorable.js';

const debug = createDebug('kvmtest:checkpoint');
/** The stream between two local QEMUs carries every touched page: seconds under TCG at worst. */
const TRANSFER_TIMEOUT_MS = 60_000;

/** A running machine captured into a directory: the same files as a warm snapshot, plus the disk's chain. */
export interface Captured {
  dir: string;
  /** Device state (x-ignore-shared: the RAM is in `ram`). */
  state: string;
  /** The guest's RAM at the moment of capture; clones map it private. */
  ram: string;
  /** The guest's disk layer at that moment, frozen; `chain` lies beneath it, nearest first. */
  disk: string;
  chain: BackingLink[];
  seed: string;
  stateBytes: number;
  /** How long the captured guest was paused. */
  pauseMs: number;
  /** How long the whole capture took. */
  tookMs: number;
}

/** Bytes per second: no throttle that matters on one host. */
const UNTHROTTLED = 64 * 2 ** 30;
/** The longest final pause QEMU may plan for (ms): large, so a guest that keeps writing still converges. */
const SWITCHOVER_MS = 2000;
const WITHOUT_IGNORE_SHARED = [
  { capability: 'events', state: true },
  { capability: 'x-ignore-shared', state: false },
];
const DEVICES_ONLY = [
  { capability: 'events', state: true },
  { capability: 'x-ignore-shared', state: true },
];

/**
 * Captures a running machine into `dir` (empty, private), pausing it only for the switchover: its RAM
 * and devices stream live to a receiving QEMU whose RAM is `dir`/ram.bin (a shared file); in the
 * pause its disk's top layer is frozen under a new overlay (the guest writes there from now on). The
 * receiver then saves its devices only (x-ignore-shared) and quits: the directory holds what a warm
 * snapshot holds, so clones restore the same way. Holds the machine's operation lock throughout: a
 * second capture of the same machine starts from the disk layout the first one left.
 */
export function captureMachine(plan: MachinePlan, source: Machine, dir: string, signal?: AbortSignal): Promise<Captured> {
  if (source.views.size > 0) {
    // the receiver and the clones would need the same disks at the same targets: not modelled yet
    return Promise.reject(kvmtestError('SNAPSHOT_FAILED', `${source.name} has disks mounted (node: 'host', mount()): a checkpoint of it is not supported yet; mount in each clone instead`));
  }
  return checkRestorable(plan, 'SNAPSHOT_FAILED').then(() => source.exclusive(() => capture(plan, source, dir, signal)));
}

async function capture(plan: MachinePlan, source: Machine, dir: string, signal?: AbortSignal): Promise<Captured> {
  const started = performance.now();
  const files = { state: join(dir, 'state.bin'), ram: join(dir, 'ram.bin'), disk: join(dir, 'disk.qcow2'), seed: join(dir, 'seed.iso') };
  await writeNoFollow(files.state, '', CREATE_NEW);
  await writeNoFollow(files.ram, '', CREATE_NEW);
  const frozen = { ...source.disk };
  const layer = `${DISK_NODE}-${randomBytes(4).toString('hex')}`;
  const nextTop = join(source.dir, `${layer}.qcow2`);
  const chain: BackingLink[] = [{ path: frozen.path, format: 'qcow2' }, ...frozen.chain];
  // the next top and the receiver are made before the stream starts: the pause holds the switchover only
  const [receiving, overlaid] = await Promise.allSettled([
    startReceiver(plan, { ram: files.ram, chain, seed: source.spec.seed }),
    createOverlay(plan.tools.qemuImg, { path: frozen.path, format: 'qcow2', virtualSize: plan.base.virtualSize }, nextTop),
  ]);
  if (receiving.status === 'rejected' || overlaid.status === 'rejected') {
    if (receiving.status === 'fulfilled') await receiving.value.machine.stop('kill');
    await rm(nextTop, { force: true });
    throw receiving.status === 'rejected' ? receiving.reason : (overlaid as PromiseRejectedResult).reason;
  }
  const receiver = receiving.value;
  const phases: string[] = [`ready ${(performance.now() - started).toFixed(0)}`];
  let pauseMs = 0;
  try {
    const received = migrationEnd(receiver.qmp, signal);
    await receiver.qmp.execute('migrate-set-capabilities', { capabilities: WITHOUT_IGNORE_SHARED });
    await receiver.qmp.execute('migrate-incoming', { uri: `unix:${receiver.socket}` });
    pauseMs = await pauseAndSend(source, { node: layer, path: nextTop, chain }, receiver.socket, signal);
    phases.push(`sent ${(performance.now() - started).toFixed(0)}`);
    await race(received, receiver.machine, 'receiving the checkpoint');
    phases.push(`received ${(performance.now() - started).toFixed(0)}`);
    await race(
      saveState(receiver.qmp, files.state, receiver.machine.dir, DEVICES_ONLY, signal).then(() => undefined),
      receiver.machine,
      'saving the checkpoint',
    );
    phases.push(`saved ${(performance.now() - started).toFixed(0)}`);
  } finally {
    await receiver.machine.stop('kill');
  }
  phases.push(`stopped ${(performance.now() - started).toFixed(0)}`);
  // the frozen layer is never written again: the checkpoint shares it (a link), or copies it (another filesystem)
  await linkOrCopy(frozen.path, files.disk);
  await linkOrCopy(source.spec.seed, files.seed);
  const stateBytes = (await stat(files.state)).size;
  const tookMs = performance.now() - started;
  debug('%s captured into %s: paused %d ms, %d ms in all (%s), state %d bytes', source.name, dir, pauseMs, tookMs, phases.join(', '), stateBytes);
  return { dir, ...files, chain: frozen.chain, stateBytes, pauseMs, tookMs };
}

/**
 * On the source: a live migration to the receiver (the guest runs while
 * its RAM is copied) that QEMU pauses before the switchover (`pause-before-switchover`: the VM is
 * stopped, the last dirty pages and the devices not yet sent). In that pause the new overlay goes
 * above the frozen top, so the disk and the RAM are of the same moment; then the switchover, and the
 * guest runs again (even when the stream failed). Returns the pause in ms.
 */
async function pauseAndSend(source: Machine, next: { node: string; path: string; chain: BackingLink[] }, socket: string, signal?: AbortSignal): Promise<number> {
  const qmp = source.qmp;
  const sent = migrationEnd(qmp, signal);
  const paused = migrationEnd(qmp, signal, 'pre-switchover');
  sent.catch(() => {});
  await qmp.execute('migrate-set-capabilities', { capabilities: [...WITHOUT_IGNORE_SHARED, { capability: 'pause-before-switchover', state: true }] });
  // QEMU throttles a migration to 128 MiB/s by default (made for networks): this one is a local socket;
  // a switchover is allowed once what is left fits in 2 s, so a busy guest converges after one pass
  await qmp.execute('migrate-set-parameters', { 'max-bandwidth': UNTHROTTLED, 'downtime-limit': SWITCHOVER_MS });
  await qmp.execute('migrate', { uri: `unix:${socket}` });
  let pausedAt: number | undefined;
  try {
    await race(paused, source, 'sending the checkpoint');
    pausedAt = performance.now();
    await qmp.execute('blockdev-add', { driver: 'qcow2', 'node-name': next.node, discard: 'unmap', file: { driver: 'file', filename: next.path }, backing: null });
    await qmp.execute('blockdev-snapshot', { node: source.disk.node, overlay: next.node });
    source.disk = next;
    await qmp.execute('migrate-continue', { state: 'pre-switchover' });
    await race(sent, source, 'sending the checkpoint');
    const info = await qmp.execute<{ ram?: { transferred?: number; duplicate?: number; 'dirty-sync-count'?: number }; downtime?: number; 'total-time'?: number; 'setup-time'?: number }>(
      'query-migrate',
    );
    debug(
      '%s: sent %d bytes of RAM (%d zero pages, %d syncs) in %d ms (setup %d ms), downtime %d ms',
      source.name,
      info.ram?.transferred,
      info.ram?.duplicate,
      info.ram?.['dirty-sync-count'],
      info['total-time'],
      info['setup-time'],
      info.downtime,
    );
  } catch (error) {
    await qmp.execute('migrate_cancel').catch(() => {});
    throw error;
  } finally {
    if (!source.qemu.hasExited && pausedAt !== undefined) await resume(source);
  }
  return performance.now() - pausedAt;
}

/** How long the source may stay between "migration completed" and its settled run state. */
const SETTLE_MS = 10_000;

/**
 * Runs the source again after its migration ended. QEMU sends the `completed` event from the
 * migration thread *before* it moves the VM to `postmigrate`; a `cont` in that gap is undone by the
 * move, and the guest stays paused (its next migrate fails with "paused due to previous migration").
 * So: wait until the VM has left `finish-migrate`, then `cont` (which also takes the disks back from
 * the receiver) unless a failed migration already resumed it.
 */
async function resume(source: Machine): Promise<void> {
  const deadline = performance.now() + SETTLE_MS;
  for (;;) {
    const { status } = await source.qmp.execute<{ status: string }>('query-status').catch(() => ({ status: 'unknown' }));
    if (status === 'running' || source.qemu.hasExited) return;
    if (status === 'finish-migrate' && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
      continue;
    }
    await source.qmp.execute('cont').catch((error: unknown) => debug('%s: cont after the capture (%s) failed: %s', source.name, status, (error as Error).message));
    return;
  }
}

interface Receiver {
  machine: Machine;
  qmp: QmpClient;
  socket: string;
}

/**
 * A QEMU with the same machine as the source, its RAM a shared file (the checkpoint's), waiting for a
 * stream on a unix socket in its private dir. It never runs the guest: it receives, saves, quits.
 */
async function startReceiver(plan: MachinePlan, from: { ram: string; chain: BackingLink[]; seed: string }): Promise<Receiver> {
  const name = `kvmtest-capture-${randomBytes(4).toString('hex')}`;
  const tmp = await tmpDir({ prefix: 'kvmtest', unsafeCleanup: true, mode: 0o700 });
  const dir = tmp.path;
  const tracked = track(name, dir);
  let machine: Machine;
  try {
    const disk = join(dir, 'disk.qcow2');
    await createOverlay(plan.tools.qemuImg, { ...from.chain[0]!, virtualSize: plan.base.virtualSize }, disk);
    await copyUefiVars(plan, dir);
    const spec = {
      ...machineSpec(plan, name, dir, disk, from.chain, from.seed, await withFreePorts(plan.opts.network)),
      memoryFile: { path: from.ram, shared: true },
      incomingDeferred: true,
    };
    await tracked.registered;
    machine = Machine.launch(plan, { spec, dir, tracked });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    tracked.untrack();
    throw error;
  }
  try {
    const qmp = await race(QmpClient.connect(machine.spec.qmpSocket, { signal: AbortSignal.timeout(TRANSFER_TIMEOUT_MS) }), machine, 'starting the receiver');
    machine.attachQmp(qmp);
    return { machine, qmp, socket: join(dir, 'incoming.sock') };
  } catch (error) {
    await machine.stop('kill');
    throw error;
  }
}

/** The MIGRATION event that ends a stream on this QEMU (either end), listened for before it starts. */
function migrationEnd(qmp: QmpClient, signal?: AbortSignal, until: 'completed' | 'pre-switchover' = 'completed'): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => done(kvmtestError('SNAPSHOT_FAILED', `the checkpoint's migration did not end within ${TRANSFER_TIMEOUT_MS / 1000} s`)), TRANSFER_TIMEOUT_MS);
    const onEvent = (event: QmpEvent) => {
      if (event.event !== 'MIGRATION') return;
      const status = String(event.data?.status);
      if (status === until) done();
      else if (status === 'failed' || status === 'cancelled') done(kvmtestError('SNAPSHOT_FAILED', `the checkpoint's migration ${status}`));
    };
    const onAbort = () => done(kvmtestError('ABORTED', 'the checkpoint was aborted', { cause: signal?.reason }));
    function done(error?: KvmtestError): void {
      clearTimeout(timer);
      qmp.off('event', onEvent);
      signal?.removeEventListener('abort', onAbort);
      if (error) reject(error);
      else resolve();
    }
    qmp.on('event', onEvent);
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** A step that fails at once, with the cause, when its QEMU dies. */
async function race<T>(step: Promise<T>, machine: Machine, what: string): Promise<T> {
  step.catch(() => {});
  return Promise.race([
    step,
    machine.fatal.catch((error: unknown) => {
      throw error instanceof KvmtestError ? kvmtestError('SNAPSHOT_FAILED', `${what} failed: ${error.message}`, { cause: error }) : error;
    }),
  ]);
}

/** A hard link where both are on one filesystem, else a copy (a reflink where the filesystem can). */
async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    await copyFile(from, to, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
  }
}
