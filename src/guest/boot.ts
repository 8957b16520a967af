import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import createDebug from 'debug';
import { dir as tmpDir } from 'tmp-promise';
import { type CapsuleInfo, type CapsuleNotes, saveCapsule } from '../capsule/save.js';
import { KvmtestError } from '../errors.js';
import { warnOnce } from '../host/warn.js';
import type { BackingLink } from '../image/disk.js';
import type { Machine } from '../machine/machine.js';
import { track } from '../machine/registry.js';
import { type Incoming, incomingOf, startMachine } from '../machine/start.js';
import { type Captured, captureMachine } from '../snapshot/capture.js';
import { ensureSetupLayer, runSetupStep } from '../snapshot/layer.js';
import type { SetupStep } from '../snapshot/layer-key.js';
import { removeSnapshot, type Snapshot, touchSnapshot } from '../snapshot/store.js';
import { ensureSnapshot } from '../snapshot/template.js';
import { silentProgress } from '../util/progress.js';
import { Checkpoint, type CheckpointBootOptions } from './checkpoint.js';
import { Guest } from './guest.js';
import { type BootOptions, checkHostname } from './options.js';
import { type Prepared, prepare } from './prepare.js';

const debug = createDebug('kvmtest:boot');

/**
 * Boots a throwaway guest: a qcow2 overlay on the base image (never written), a NoCloud seed that
 * installs and starts the agent, QEMU with a QMP socket and a virtio-serial port. Resolves when the
 * agent says hello; rejects with BOOT_TIMEOUT, QEMU_EXITED, KERNEL_PANIC or NOT_BOOTABLE (with the
 * console tail) otherwise, leaving nothing behind.
 *
 * With `snapshot: true` the guest is restored from a warm snapshot of the same image and settings
 * (made by one cold boot the first time), and boots cold only where that cannot work.
 */
export async function boot(options: BootOptions): Promise<Guest> {
  const started = performance.now();
  const prep = await prepare(options);
  if (prep.opts.snapshot) {
    let snapshot: Snapshot | undefined;
    try {
      snapshot = await ensureSnapshot(prep);
    } catch (error) {
      if (!(error instanceof KvmtestError) || error.code !== 'SNAPSHOT_FAILED') throw error;
      warnOnce(`kvmtest: cannot make a snapshot (${error.message}); booting cold`);
    }
    // a failing setup is the user's to fix (SETUP_FAILED), never a reason to boot without it
    if (snapshot && prep.opts.setup) return fromLayer(prep, started, snapshot, prep.opts.setup);
    if (snapshot) {
      try {
        return (await start(prep, started, { incoming: incomingOf(snapshot), snapshot })).guest;
      } catch (error) {
        if (!restoreFailed(error, prep)) throw error;
        // a snapshot that does not restore is never used again
        warnOnce(`kvmtest: snapshot ${snapshot.key} did not restore (${error.message.split('\n')[0]}); deleted, booting cold`);
        await removeSnapshot(snapshot.key);
      }
    }
  }
  const { guest, machine } = await start(prep, started, undefined);
  if (prep.opts.setup) {
    // no snapshot to put a layer on: the setup runs in this guest, uncached
    await runSetupStep(machine.agent, prep.opts.setup, prep.progress).catch(async (error: unknown) => {
      await guest.dispose();
      throw error;
    });
  }
  return guest;
}

/** A guest restored from the setup layer on a snapshot (made first if missing); a layer that does not restore is made anew, once. */
async function fromLayer(prep: Prepared, started: number, snapshot: Snapshot, step: SetupStep): Promise<Guest> {
  for (let attempt = 1; ; attempt++) {
    const { snapshot: layer, chain } = await ensureSetupLayer(prep, snapshot, step);
    try {
      return (await start(prep, started, { incoming: incomingOf(layer, chain), snapshot: layer })).guest;
    } catch (error) {
      if (attempt > 1 || !restoreFailed(error, prep)) throw error;
      warnOnce(`kvmtest: setup layer ${layer.key} did not restore (${error.message.split('\n')[0]}); deleted, making it anew`);
      await removeSnapshot(layer.key);
    }
  }
}

/** A restore that failed in a way a saved machine can cause (not the caller's abort): the saved machine is dropped. */
function restoreFailed(error: unknown, prep: Prepared): error is KvmtestError {
  return error instanceof KvmtestError && ['SNAPSHOT_FAILED', 'QEMU_EXITED', 'BOOT_TIMEOUT'].includes(error.code) && !prep.opts.signal?.aborted;
}

/** Where a guest starts from: a warm snapshot (keyed, touched when used) or a checkpoint. */
export interface From {
  incoming?: Incoming;
  snapshot?: Snapshot;
  /** A cold boot on this disk chain instead of the base alone (a capsule's disk). */
  lower?: BackingLink[];
}

/**
 * Starts one guest's machine: cold from the base image (or a lower disk chain), or restored from a
 * saved machine, then gives it its own identity. Also the start of a capsule's repro (repro.ts).
 */
export async function start(prep: Prepared, started: number, from: From | undefined): Promise<{ guest: Guest; machine: Machine }> {
  const { opts, progress } = prep;
  const name = `kvmtest-${randomBytes(4).toString('hex')}`;
  let machine: Machine | undefined;
  try {
    progress.phase('preparing');
    machine = await startMachine(prep, {
      name,
      ...(from?.incoming ? { incoming: from.incoming, hostname: opts.hostname ?? name } : {}),
      ...(from?.lower ? { lower: from.lower } : {}),
      phase: `${from?.incoming ? 'restoring' : 'booting'} (${prep.choice.accel}, ${opts.cpus} cpu, ${opts.memoryMiB}M)`,
    });
    if (from?.snapshot) await touchSnapshot(from.snapshot);
    const bootMs = performance.now() - started;
    const { hello, spec } = machine;
    progress.done(`${hello.os.prettyName ?? hello.os.id} ${from?.incoming ? 'restored' : 'up'}, kernel ${hello.kernel}`);
    debug('%s %s in %d ms', name, from?.incoming ? 'restored' : 'booted', bootMs);
    const ready = machine;
    const guest = new Guest(
      machine,
      {
        name,
        accel: prep.choice.accel,
        cpus: opts.cpus,
        memoryMiB: opts.memoryMiB,
        dir: machine.dir,
        consolePath: machine.qemu.console.path,
        agentSocket: spec.agentSocket,
        agent: { ...hello, hostname: opts.hostname ?? (from?.incoming ? name : hello.hostname) },
        bootMs,
        ...(from?.snapshot ? { snapshot: from.snapshot.key } : {}),
        ...(spec.network ? { forwards: spec.network.forwards } : {}),
      },
      {
        checkpoint: (signal) => checkpoint(prep, ready, name, signal),
        capsule: (dir, notes, signal) => capsuleOf(prep, ready, dir, notes, signal),
      },
    );
    return { guest, machine };
  } catch (error) {
    progress.fail(error instanceof Error ? error.message.split('\n')[0]! : String(error));
    await machine?.stop('kill');
    throw error;
  }
}

/** Captures a running guest's machine into a private directory (tracked by the reaper) and wraps it as a Checkpoint. */
export async function checkpoint(prep: Prepared, machine: Machine, name: string, signal?: AbortSignal): Promise<Checkpoint> {
  const tmp = await tmpDir({ prefix: 'kvmtest', unsafeCleanup: true, mode: 0o700 });
  const tracked = track(`kvmtest-checkpoint-${randomBytes(4).toString('hex')}`, tmp.path);
  try {
    await tracked.registered;
    const captured = await captureMachine(prep, machine, tmp.path, signal);
    return new Checkpoint(captured, name, (c, options, release) => cloneOf(prep, c, options, release), tracked);
  } catch (error) {
    await rm(tmp.path, { recursive: true, force: true });
    tracked.untrack();
    throw error;
  }
}

/** Saves a guest's machine as a capsule, naming its base as the user did (a path made absolute). */
export function capsuleOf(prep: Prepared, machine: Machine, dir: string, notes: CapsuleNotes, signal?: AbortSignal): Promise<CapsuleInfo> {
  const baseName = prep.source.kind === 'local' ? prep.base.path : prep.opts.image;
  return saveCapsule({ ...prep, baseName }, machine, dir, notes, signal);
}

/** One clone of a capture: the captured guest's plan, its own hostname, no progress lines (it takes a second). */
async function cloneOf(prep: Prepared, captured: Captured, options: CheckpointBootOptions, release: () => Promise<void>): Promise<Guest> {
  if (options.hostname !== undefined) checkHostname(options.hostname);
  const { hostname: _, signal: __, ...opts } = prep.opts;
  const plan: Prepared = {
    ...prep,
    opts: { ...opts, ...(options.hostname ? { hostname: options.hostname } : {}), ...(options.signal ? { signal: options.signal } : {}) },
    progress: silentProgress,
  };
  const { guest, machine } = await start(plan, performance.now(), {
    incoming: incomingOf(captured, captured.chain),
  });
  machine.afterStop(release);
  return guest;
}
