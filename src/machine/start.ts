import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { dir as tmpDir } from 'tmp-promise';
import { KvmtestError } from '../errors.js';
import { type BackingLink, baseChain, createOverlay } from '../image/disk.js';
import type { MachineSpec } from '../qemu/argv.js';
import { renderSeed } from '../seed/cloud-config.js';
import { writeSeedIso } from '../seed/iso.js';
import { Machine } from './machine.js';
import { copyUefiVars, type MachinePlan, machineSpec, startTimeoutMs, withFreePorts } from './plan.js';
import { track } from './registry.js';
import { waitReady } from './wait-ready.js';

/**
 * A saved machine to restore: its disk (the new overlay's backing), its seed, its device state and
 * its RAM file (mapped private); without `ram` the state holds the RAM too (a capsule's).
 */
export interface Incoming {
  disk: string;
  /** What lies beneath `disk`, nearest first; default the base's chain (a warm snapshot's disk is an overlay on the base). */
  chain?: BackingLink[];
  seed: string;
  state: string;
  ram?: string;
}

/** A saved machine's files (a warm snapshot, a setup layer, a checkpoint) as the incoming state of a restore. */
export function incomingOf(saved: Pick<Incoming, 'disk' | 'seed' | 'state' | 'ram'>, chain?: BackingLink[]): Incoming {
  return { disk: saved.disk, seed: saved.seed, state: saved.state, ram: saved.ram, ...(chain ? { chain } : {}) };
}

export interface StartOptions {
  /** Default kvmtest-<random>. */
  name?: string;
  /** Restore this saved machine instead of booting from the base image. */
  incoming?: Incoming;
  /** A cold boot on this disk chain (nearest first) instead of the base alone: a capsule's disk, booted afresh. */
  lower?: BackingLink[];
  /**
   * Make the disk and seed here, to outlive the machine (a snapshot template's); default its private
   * dir. With `ram`, the guest's RAM lives in that file (made by the caller), shared: it is the template's.
   */
  keep?: { disk: string; seed: string; ram?: string };
  /** The seed's instance id and hostname; default a fresh id and the hostname option, else the name. */
  seedIdentity?: { instanceId: string; hostname: string };
  /**
   * With `incoming`: the clone's hostname, sent with its hello together with a fresh machine-id, host
   * entropy and the clock (clones of one saved machine must not be copies). Default the name.
   */
  hostname?: string;
  /** The progress phase shown while QEMU starts. */
  phase?: string;
  signal?: AbortSignal;
}

/**
 * Starts one machine in a private directory (tracked by the reaper before QEMU exists): cold from
 * the base image, or restored from a saved machine. Resolves once the agent said hello; on failure
 * nothing is left behind and the error carries the console tail.
 */
export async function startMachine(plan: MachinePlan, options: StartOptions = {}): Promise<Machine> {
  const name = options.name ?? `kvmtest-${randomBytes(4).toString('hex')}`;
  const tmp = await tmpDir({ prefix: 'kvmtest', unsafeCleanup: true, mode: 0o700 });
  const dir = tmp.path;
  const tracked = track(name, dir);
  let machine: Machine;
  try {
    const { disk, seed, backing } = await makeDisk(plan, name, dir, options);
    await copyUefiVars(plan, dir);
    const spec: MachineSpec = { ...machineSpec(plan, name, dir, disk, backing, seed, await withFreePorts(plan.opts.network)), ...memorySpec(options) };
    // registration with the reaper started with track(): it must be done before QEMU exists
    await tracked.registered;
    if (options.phase) plan.progress.phase(options.phase);
    machine = Machine.launch(plan, { spec, dir, tracked });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    tracked.untrack();
    throw error;
  }
  const stopLines = machine.qemu.console.onLine((line) => line.trim() && plan.progress.update(line));
  try {
    const signal = options.signal ?? plan.opts.signal;
    const identity = options.incoming ? { hostname: options.hostname ?? name, machineId: randomBytes(16).toString('hex'), entropy: randomBytes(64) } : undefined;
    await machine.exclusive(() =>
      waitReady(machine, { timeoutMs: startTimeoutMs(plan, Boolean(options.incoming)), accel: plan.choice.accel, ...(signal ? { signal } : {}), ...(identity ? { identity } : {}) }),
    );
    return machine;
  } catch (error) {
    if (error instanceof KvmtestError && error.consoleTail === undefined) error.consoleTail = machine.consoleTail();
    await machine.stop('kill');
    throw error;
  } finally {
    stopLines();
  }
}

/** Where the RAM and the incoming state come from: a restore maps the template's RAM private, a template writes its own. */
function memorySpec(options: StartOptions): Pick<MachineSpec, 'memoryFile' | 'incomingState'> {
  if (options.incoming) return { incomingState: options.incoming.state, ...(options.incoming.ram ? { memoryFile: { path: options.incoming.ram, shared: false } } : {}) };
  return options.keep?.ram ? { memoryFile: { path: options.keep.ram, shared: true } } : {};
}

/** The machine's own disk (an overlay on the saved disk or the base) and its seed. */
async function makeDisk(plan: MachinePlan, name: string, dir: string, options: StartOptions): Promise<{ disk: string; seed: string; backing: BackingLink[] }> {
  const disk = options.keep?.disk ?? join(dir, 'disk.qcow2');
  const { incoming } = options;
  if (incoming) {
    await createOverlay(plan.tools.qemuImg, { path: incoming.disk, format: 'qcow2', virtualSize: plan.base.virtualSize }, disk);
    // QEMU opens exactly this chain: the saved disk (ours), then the base, whatever headers say
    return { disk, seed: incoming.seed, backing: [{ path: incoming.disk, format: 'qcow2' }, ...(incoming.chain ?? baseChain(plan.base))] };
  }
  const lower = options.lower ?? baseChain(plan.base);
  await createOverlay(plan.tools.qemuImg, { ...lower[0]!, virtualSize: plan.base.virtualSize }, disk);
  const identity = options.seedIdentity ?? { instanceId: `${name}-${Date.now()}`, hostname: plan.opts.hostname ?? name };
  const files = renderSeed({ ...identity, agentSource: plan.agentSource, user: plan.opts.cloudConfig });
  const seed = await writeSeedIso(plan.tools.iso, dir, files, options.keep?.seed ?? join(dir, 'seed.iso'));
  return { disk, seed, backing: lower };
}
