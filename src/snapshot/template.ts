import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import createDebug from 'debug';
import { GuestProcess } from '../agent/exec.js';
import { KvmtestError, kvmtestError } from '../errors.js';
import { qemuVersion } from '../host/tools.js';
import { baseChain } from '../image/disk.js';
import { migrationCapabilities } from '../machine/incoming.js';
import { type MachinePlan, machineSpec } from '../machine/plan.js';
import { startMachine } from '../machine/start.js';
import { buildQemuArgs, type MachineSpec } from '../qemu/argv.js';
import { fileDigest } from './digest.js';
import { snapshotKey } from './key.js';
import { saveState } from './migrate.js';
import { pruneSnapshots } from './prune.js';
import { checkRestorable } from './restorable.js';
import { makeSnapshotDir, readSnapshot, removeSnapshot, type Snapshot, snapshotPaths, withSnapshotLock, writeMeta } from './store.js';

const debug = createDebug('kvmtest:snapshot');
/** How long the template may take to finish cloud-init before its state is saved. */
const SETTLE_TIMEOUT_MS = 10 * 60_000;
/**
 * Run in the template just before its save: every clone would otherwise share its SSH host keys and
 * systemd's random seed. The removed keys' names are kept so that each clone's identity step
 * (guest/agent.py) makes new keys of the same types.
 */
const SEAL_TEMPLATE = [
  'set -e',
  'mkdir -p /var/lib/kvmtest',
  '(ls /etc/ssh 2>/dev/null || true) | (grep -E "^ssh_host_[a-z0-9]+_key$" || true) > /var/lib/kvmtest/ssh-host-keys',
  'rm -f /etc/ssh/ssh_host_* /var/lib/systemd/random-seed',
  'sync',
].join('\n');

/** The snapshot key for a machine plan: base content, QEMU, machine, agent, cloud-config. */
export async function keyFor(prep: MachinePlan): Promise<string> {
  // the chain's files are keyed by content (baseDigest), not by where they are
  const chain = baseChain(prep.base).map((link, i) => ({ path: `/BASE${i}`, format: link.format }));
  // what QEMU loads into the guest's RAM from host files: a kernel and initrd, or riscv64's U-Boot
  const boot = prep.bootMethod;
  const kernelFiles = boot.kind === 'kernel' ? [boot.kernel, boot.initrd].filter((f): f is string => Boolean(f)) : boot.firmware === 'uboot' ? [boot.loader] : [];
  return snapshotKey({
    baseDigest: [await fileDigest(prep.base.path), ...(prep.base.backingFile ? [await fileDigest(prep.base.backingFile)] : [])].join('+'),
    qemuVersion: await qemuVersion(prep.tools.qemu),
    machineArgs: templateArgs(prep, chain),
    agentDigest: createHash('sha256').update(prep.agentSource).digest('hex'),
    cloudConfig: prep.opts.cloudConfig,
    kernelDigests: await Promise.all(kernelFiles.map(fileDigest)),
  });
}

/**
 * The template's argv with its private paths and host ports as placeholders: what the key hashes.
 * The RAM in a shared file is part of it, so whole-RAM snapshots of older kvmtests are never found. Pure.
 */
export function templateArgs(prep: Pick<MachinePlan, 'bootMethod' | 'choice' | 'opts' | 'sandbox'>, chain: MachineSpec['backing']): string[] {
  // the sandbox shapes no guest state
  const placeholders: MachineSpec = {
    ...machineSpec(prep, 'NAME', '/DIR', '/DIR/disk.qcow2', chain, '/DIR/seed.iso', normalisedNetwork(prep)),
    sandbox: false,
    memoryFile: { path: '/DIR/ram.bin', shared: true },
  };
  return buildQemuArgs(placeholders);
}

/** Host ports do not shape a snapshot (they are not guest state): keyed as 0. */
function normalisedNetwork(prep: Pick<MachinePlan, 'opts'>): MachineSpec['network'] {
  const network = prep.opts.network;
  return network === false ? false : { forwards: network.forwards.map((f) => ({ guest: f.guest, host: 0 })), ...(network.outbound === false ? { outbound: false } : {}) };
}

/**
 * The warm snapshot for these settings, made now by one cold boot if the cache lacks it. Concurrent
 * callers make it once: the first holds the key's lock, the others wait and then find it.
 */
export async function ensureSnapshot(prep: MachinePlan): Promise<Snapshot> {
  await checkRestorable(prep, 'SNAPSHOT_FAILED');
  const key = await keyFor(prep);
  const ramBytes = prep.opts.memoryMiB * 2 ** 20;
  const ready = await readSnapshot(key, ramBytes);
  if (ready) return ready;
  return withSnapshotLock(key, async () => {
    const existing = await readSnapshot(key, ramBytes);
    if (existing) return existing;
    await removeSnapshot(key); // a half-made one from a builder that died
    try {
      const made = await makeSnapshot(prep, key);
      await pruneSnapshots({ keep: key });
      return made;
    } catch (error) {
      await removeSnapshot(key);
      throw error;
    }
  });
}

async function makeSnapshot(plan: MachinePlan, key: string): Promise<Snapshot> {
  const paths = snapshotPaths(key);
  await makeSnapshotDir(paths);
  const name = `kvmtest-template-${key.slice(0, 8)}`;
  const started = performance.now();
  plan.progress.phase('making a warm snapshot (once per image and settings)');
  // the template's disk, seed and RAM file are the snapshot's: they outlive its private dir
  const machine = await startMachine(plan, { name, keep: { disk: paths.disk, seed: paths.seed, ram: paths.ram }, seedIdentity: { instanceId: name, hostname: name } });
  try {
    const { agent } = machine;
    // let the guest settle: clones should not inherit a half-run cloud-init eating their CPU
    plan.progress.phase('snapshot: waiting for cloud-init to finish');
    const settled = await new GuestProcess(agent, { shell: 'cloud-init status --wait >/dev/null 2>&1; sync' }, { timeoutMs: SETTLE_TIMEOUT_MS }, { live: false });
    debug('template settled (exit %s)', settled.exitCode);
    const sealed = await new GuestProcess(agent, { shell: SEAL_TEMPLATE }, { timeoutMs: SETTLE_TIMEOUT_MS }, { live: false });
    if (!sealed.ok) throw kvmtestError('SNAPSHOT_FAILED', `could not remove the template's SSH host keys and random seed (exit ${sealed.exitCode}): ${sealed.stderr.trim()}`);
    // save with the host hung up, so every clone starts with a fresh session and a hello
    agent.close();
    await new Promise((r) => setTimeout(r, 500));
    plan.progress.phase('snapshot: saving the VM state');
    const saveStarted = performance.now();
    await machine
      .exclusive(() => saveState(machine.qmp, paths.state, machine.dir, migrationCapabilities(machine.spec), plan.opts.signal))
      .catch((error) => {
        throw error instanceof KvmtestError ? error : kvmtestError('SNAPSHOT_FAILED', `saving the VM state failed: ${(error as Error).message}`, { cause: error });
      });
    const saveMs = performance.now() - saveStarted;
    await machine.stop();
    const stateBytes = (await stat(paths.state)).size;
    const ramBytes = (await stat(paths.ram)).size;
    debug('snapshot %s: state %d bytes, RAM file %d bytes, saved in %d ms, made in %d ms', key, stateBytes, ramBytes, saveMs, performance.now() - started);
    return await writeMeta(paths, { key, createdAt: new Date().toISOString(), baseImage: plan.base.path, stateBytes, ramBytes, saveMs });
  } finally {
    // once only: after the stop above this just waits for it
    await machine.stop('kill');
  }
}
