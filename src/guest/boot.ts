import { randomBytes } from 'node:crypto';
import createDebug from 'debug';
import { KvmtestError } from '../errors.js';
import { warnOnce } from '../host/warn.js';
import type { Machine } from '../machine/machine.js';
import { startMachine } from '../machine/start.js';
import { sendIdentity } from '../snapshot/identity.js';
import { removeSnapshot, type Snapshot, touchSnapshot } from '../snapshot/store.js';
import { ensureSnapshot } from '../snapshot/template.js';
import { Guest } from './guest.js';
import type { BootOptions } from './options.js';
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
    if (snapshot) {
      try {
        return await start(prep, started, snapshot);
      } catch (error) {
        if (!(error instanceof KvmtestError) || !['SNAPSHOT_FAILED', 'QEMU_EXITED', 'BOOT_TIMEOUT'].includes(error.code) || prep.opts.signal?.aborted) throw error;
        // a snapshot that does not restore is never used again
        warnOnce(`kvmtest: snapshot ${snapshot.key} did not restore (${error.message.split('\n')[0]}); deleted, booting cold`);
        await removeSnapshot(snapshot.key);
      }
    }
  }
  return start(prep, started, undefined);
}

/** Starts one guest's machine: cold from the base image, or restored from a snapshot, then gives it its own identity. */
async function start(prep: Prepared, started: number, snapshot: Snapshot | undefined): Promise<Guest> {
  const { opts, progress } = prep;
  const name = `kvmtest-${randomBytes(4).toString('hex')}`;
  let machine: Machine | undefined;
  try {
    progress.phase('preparing');
    machine = await startMachine(prep, {
      name,
      ...(snapshot ? { incoming: { disk: snapshot.disk, seed: snapshot.seed, state: snapshot.state, ram: snapshot.ram } } : {}),
      phase: `${snapshot ? 'restoring' : 'booting'} (${prep.choice.accel}, ${opts.cpus} cpu, ${opts.memoryMiB}M)`,
    });
    if (snapshot) {
      await sendIdentity(machine.agent, opts.hostname ?? name);
      await touchSnapshot(snapshot);
    }
    const bootMs = performance.now() - started;
    const { hello, spec } = machine;
    progress.done(`${hello.os.prettyName ?? hello.os.id} ${snapshot ? 'restored' : 'up'}, kernel ${hello.kernel}`);
    debug('%s %s in %d ms', name, snapshot ? 'restored' : 'booted', bootMs);
    return new Guest(machine, {
      name,
      accel: prep.choice.accel,
      cpus: opts.cpus,
      memoryMiB: opts.memoryMiB,
      dir: machine.dir,
      consolePath: machine.qemu.console.path,
      agentSocket: spec.agentSocket,
      agent: { ...hello, hostname: opts.hostname ?? (snapshot ? name : hello.hostname) },
      bootMs,
      ...(snapshot ? { snapshot: snapshot.key } : {}),
      ...(spec.network ? { forwards: spec.network.forwards } : {}),
    });
  } catch (error) {
    progress.fail(error instanceof Error ? error.message.split('\n')[0]! : String(error));
    await machine?.stop('kill');
    throw error;
  }
}
