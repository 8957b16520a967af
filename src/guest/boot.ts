import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { dir as tmpDir } from 'tmp-promise';
import createDebug from 'debug';
import { KvmtestError } from '../errors.js';
import { baseChain, createOverlay, type BackingLink } from '../image/disk.js';
import type { QemuProcess } from '../qemu/process.js';
import { renderSeed } from '../seed/cloud-config.js';
import { writeSeedIso } from '../seed/iso.js';
import { sendIdentity } from '../snapshot/identity.js';
import { ensureSnapshot } from '../snapshot/template.js';
import { removeSnapshot, touchSnapshot, type Snapshot } from '../snapshot/store.js';
import { Guest } from './guest.js';
import { launch, type Launched } from './launch.js';
import { DEFAULT_BOOT_TIMEOUT_MS, type BootOptions } from './options.js';
import { copyUefiVars, machineSpec, prepare, warnOnce, withFreePorts, type Prepared } from './prepare.js';
import { track } from './registry.js';

const debug = createDebug('kvmtest:boot');
const RESTORE_TIMEOUT_MS = 20_000;

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
  if (options.snapshot) {
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
        if (!(error instanceof KvmtestError) || !['SNAPSHOT_FAILED', 'QEMU_EXITED', 'BOOT_TIMEOUT'].includes(error.code) || options.signal?.aborted) throw error;
        // a snapshot that does not restore is never used again
        warnOnce(`kvmtest: snapshot ${snapshot.key} did not restore (${error.message.split('\n')[0]}); deleted, booting cold`);
        await removeSnapshot(snapshot.key);
      }
    }
  }
  return start(prep, started, undefined);
}

/** Starts one guest in a private directory: cold from the base image, or restored from a snapshot. */
async function start(prep: Prepared, started: number, snapshot: Snapshot | undefined): Promise<Guest> {
  const { opts, progress } = prep;
  const tmp = await tmpDir({ prefix: 'kvmtest', unsafeCleanup: true, mode: 0o700 });
  const name = `kvmtest-${randomBytes(4).toString('hex')}`;
  let qemu: QemuProcess | undefined;
  const tracked = track(name, tmp.path);
  try {
    progress.phase('preparing');
    const disk = join(tmp.path, 'disk.qcow2');
    let seed: string;
    // QEMU opens exactly this chain: the snapshot's disk (ours), then the base, whatever headers say
    const backing: BackingLink[] = [...(snapshot ? [{ path: snapshot.disk, format: 'qcow2' as const }] : []), ...baseChain(prep.base)];
    if (snapshot) {
      await createOverlay(prep.tools.qemuImg, { path: snapshot.disk, format: 'qcow2', virtualSize: prep.base.virtualSize }, disk);
      seed = snapshot.seed;
    } else {
      await createOverlay(prep.tools.qemuImg, prep.base, disk);
      const files = renderSeed({ instanceId: `${name}-${Date.now()}`, hostname: opts.hostname ?? name, agentSource: prep.agentSource, user: prep.userConfig });
      seed = await writeSeedIso(prep.tools.iso, tmp.path, files, join(tmp.path, 'seed.iso'));
    }
    await copyUefiVars(prep, tmp.path);
    const spec = { ...machineSpec(prep, name, tmp.path, disk, backing, seed, await withFreePorts(opts.network)), ...(snapshot ? { incomingState: snapshot.state } : {}) };
    // registration with the reaper started with track(): it must be done before QEMU exists
    await tracked.registered;
    progress.phase(`${snapshot ? 'restoring' : 'booting'} (${prep.choice.accel}, ${opts.cpus} cpu, ${opts.memoryMiB}M)`);
    // a restore takes a second or two: one that hangs is broken, not slow
    const timeoutMs = opts.bootTimeoutMs ?? (snapshot ? RESTORE_TIMEOUT_MS : DEFAULT_BOOT_TIMEOUT_MS) * prep.choice.timeoutScale;
    const launched: Launched = await launch(prep, spec, tmp.path, timeoutMs, (q) => {
      qemu = q;
      tracked.started(q.pid);
    });
    if (snapshot) {
      await sendIdentity(launched.agent, opts.hostname ?? name);
      await touchSnapshot(snapshot);
    }
    const bootMs = performance.now() - started;
    const { hello } = launched;
    progress.done(`${hello.os.prettyName ?? hello.os.id} ${snapshot ? 'restored' : 'up'}, kernel ${hello.kernel}`);
    debug('%s %s in %d ms', name, snapshot ? 'restored' : 'booted', bootMs);
    return new Guest({
      info: {
        name,
        accel: prep.choice.accel,
        cpus: opts.cpus,
        memoryMiB: opts.memoryMiB,
        dir: tmp.path,
        consolePath: launched.qemu.console.path,
        agentSocket: spec.agentSocket,
        agent: { ...hello, hostname: opts.hostname ?? (snapshot ? name : hello.hostname) },
        bootMs,
        ...(snapshot ? { snapshot: snapshot.key } : {}),
        ...(spec.network ? { forwards: spec.network.forwards } : {}),
      },
      ...launched,
      untrack: () => tracked.untrack(),
    });
  } catch (error) {
    progress.fail(error instanceof Error ? error.message.split('\n')[0]! : String(error));
    await qemu?.destroy();
    await tmp.cleanup();
    tracked.untrack();
    throw error;
  }
}
