import { constants } from 'node:fs';
import { copyFile, mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import createDebug from 'debug';
import { execa } from 'execa';
import { isKvmtestError, kvmtestError } from '../errors.js';
import { baseChain } from '../image/disk.js';
import type { Machine } from '../machine/machine.js';
import { type MachinePlan, uefiVarsPath } from '../machine/plan.js';
import { machineFor } from '../qemu/arch.js';
import { backingNode } from '../qemu/argv.js';
import type { QmpEvent } from '../qemu/qmp.js';
import { fileDigest } from '../snapshot/digest.js';
import { saveState } from '../snapshot/migrate.js';
import { checkRestorable } from '../snapshot/restorable.js';
import { CREATE_NEW, writeNoFollow } from '../util/no-follow.js';
import { describeFile, writeCompressed } from './files.js';
import { attachedFileName, CAPSULE_FILES, CAPSULE_FORMAT, CAPSULE_KIND, type CapsuleManifest, MANIFEST_NAME, renderManifest, stateLimit } from './manifest.js';

const debug = createDebug('kvmtest:capsule');
/** A save streams the guest's RAM once and compresses it: seconds; one that takes minutes is stuck. */
const SAVE_TIMEOUT_MS = 5 * 60_000;

/** What the caller knows about the moment (the matrix: cell, command, env, timings). */
export interface CapsuleNotes {
  cell?: CapsuleManifest['cell'];
  command?: string[] | string;
  /** The run's environment: only its names go into the manifest, unless `envValues`. */
  env?: Record<string, string>;
  /** Keep the env's values in the manifest too (they may be secrets, and a capsule travels). */
  envValues?: boolean;
  cwd?: string;
  durations?: Record<string, number>;
  hostname: string;
}

export interface CapsuleInfo {
  dir: string;
  /** The capsule's size on disk, every file counted. */
  bytes: number;
  /** The guest's state before compression. */
  stateBytes: number;
  tookMs: number;
}

/** A machine plan and the name its base image was asked for by (a catalog or recipe name, or a path). */
export type CapsulePlan = Pick<MachinePlan, 'tools' | 'base' | 'bootMethod' | 'choice' | 'opts'> & { baseName: string };

/**
 * Saves a running machine whole into `dir` (made here, 0700; it must not exist): its RAM and devices
 * (QEMU's migration stream, gzip), its disk as one qcow2 over the base image (every layer between
 * them streamed into the top first, then copied with compressed clusters), its seed, UEFI vars and
 * console log, and a manifest written last. The machine is paused for good: save, then stop it.
 * A failure leaves no directory behind and is CAPSULE_FAILED.
 */
export async function saveCapsule(plan: CapsulePlan, machine: Machine, dir: string, notes: CapsuleNotes, signal?: AbortSignal): Promise<CapsuleInfo> {
  await checkRestorable(plan, 'CAPSULE_FAILED');
  return machine.exclusive(async () => {
    const started = performance.now();
    await mkdir(dir, { mode: 0o700 });
    try {
      const info = await save(plan, machine, dir, notes, AbortSignal.any([AbortSignal.timeout(SAVE_TIMEOUT_MS), ...(signal ? [signal] : [])]));
      const tookMs = performance.now() - started;
      debug('%s saved into %s: %d bytes (state %d before gzip) in %d ms', machine.name, dir, info.bytes, info.stateBytes, tookMs);
      return { dir, ...info, tookMs };
    } catch (error) {
      await rm(dir, { recursive: true, force: true });
      if (isKvmtestError(error) && (error.code === 'CAPSULE_FAILED' || error.code === 'ABORTED')) throw error;
      throw kvmtestError('CAPSULE_FAILED', `saving a capsule of ${machine.name} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
  });
}

async function save(plan: CapsulePlan, machine: Machine, dir: string, notes: CapsuleNotes, signal: AbortSignal): Promise<Omit<CapsuleInfo, 'dir' | 'tookMs'>> {
  const qmp = machine.qmp;
  await qmp.execute('stop');
  const arch = plan.opts.arch;
  const type = await versionedMachineType(machine);
  const base = baseChain(plan.base);
  // everything between the guest's top layer and the base goes into the top: the disk is then top + base
  if (machine.disk.chain.length > base.length) await streamToBase(machine, base[0]!.path, signal);
  const files = { state: join(dir, CAPSULE_FILES.state), disk: join(dir, CAPSULE_FILES.disk), seed: join(dir, CAPSULE_FILES.seed) };
  const limit = stateLimit(plan.opts.memoryMiB * 2 ** 20);
  let written: Awaited<ReturnType<typeof writeCompressed>> | undefined;
  let sinkError: unknown;
  await saveState(
    qmp,
    async (stream) => {
      written = await writeCompressed(stream, files.state, limit).catch((error: unknown) => {
        sinkError = error;
        throw error;
      });
    },
    machine.dir,
    [
      { capability: 'events', state: true },
      { capability: 'x-ignore-shared', state: false },
    ],
    signal,
  ).catch((error: unknown) => {
    throw sinkError ?? error;
  });
  if (!written) throw kvmtestError('CAPSULE_FAILED', 'QEMU sent no state');
  await copyDisk(plan, machine.disk.path, files.disk);
  const attached: NonNullable<CapsuleManifest['attached']> = [];
  for (const [target, view] of machine.views) {
    const file = join(dir, attachedFileName(target));
    await convertCompressed(plan, { path: view.image, format: view.format }, file);
    attached.push({ target, ...(await describeFile(file)) });
  }
  await copyFile(machine.spec.seed, files.seed, constants.COPYFILE_EXCL);
  const boot = plan.bootMethod;
  const uefi = boot.kind === 'firmware' && boot.firmware === 'uefi';
  if (uefi) await copyFile(uefiVarsPath(machine.dir), join(dir, CAPSULE_FILES.uefiVars), constants.COPYFILE_EXCL);
  const consoleLog = join(dir, CAPSULE_FILES.console);
  const hasConsole = await copyFile(machine.qemu.console.path, consoleLog, constants.COPYFILE_EXCL).then(
    () => true,
    () => false,
  );
  const network = plan.opts.network;
  const manifest: CapsuleManifest = {
    kind: CAPSULE_KIND,
    format: CAPSULE_FORMAT,
    createdAt: new Date().toISOString(),
    ...(notes.cell ? { cell: notes.cell } : {}),
    ...(notes.command !== undefined ? { command: notes.command } : {}),
    ...manifestEnv(notes),
    ...(notes.cwd ? { cwd: notes.cwd } : {}),
    ...(notes.durations ? { durations: notes.durations } : {}),
    hostname: notes.hostname,
    qemu: { version: await runningVersion(machine) },
    machine: {
      arch,
      type,
      cpu: machine.spec.cpuModel ?? machineFor(arch).cpu[machine.spec.accel === 'kvm' ? 'kvm' : 'tcg'],
      accel: machine.spec.accel,
      cpus: plan.opts.cpus,
      memoryMiB: plan.opts.memoryMiB,
      boot:
        boot.kind === 'kernel'
          ? { kind: 'kernel' }
          : boot.firmware === 'uefi'
            ? { kind: 'firmware', firmware: 'uefi', code: boot.code, codeSha256: await fileDigest(boot.code) }
            : { kind: 'firmware', firmware: boot.firmware },
      network: network === false ? false : { guestPorts: network.forwards.map((f) => f.guest), outbound: network.outbound !== false },
      ...(machine.spec.memoryFile || machine.spec.ramBackend ? { ramBackend: true } : {}),
      ...(plan.opts.qemuArgs ? { qemuArgs: plan.opts.qemuArgs } : {}),
    },
    base: { name: plan.baseName, sha256: await fileDigest(plan.base.path), format: plan.base.format, virtualSize: plan.base.virtualSize },
    stateBytes: written.inBytes,
    files: {
      state: written.file,
      disk: await describeFile(files.disk),
      seed: await describeFile(files.seed),
      ...(hasConsole ? { console: await describeFile(consoleLog) } : {}),
      ...(uefi ? { uefiVars: await describeFile(join(dir, CAPSULE_FILES.uefiVars)) } : {}),
    },
    ...(attached.length > 0 ? { attached } : {}),
  };
  const text = renderManifest(manifest);
  await writeNoFollow(join(dir, MANIFEST_NAME), text, CREATE_NEW);
  // the directory holds exactly the files the manifest describes, and the manifest
  const described = [...Object.values(manifest.files), ...attached];
  const bytes = described.reduce((sum, file) => sum + file.bytes, Buffer.byteLength(text));
  return { bytes, stateBytes: written.inBytes };
}

/** Room for what rides beside the state and the disks: seed, console log (≤ 10 MiB), UEFI vars (64 MiB on aarch64), manifest. */
const SMALL_FILES_BYTES = 128 * 2 ** 20;

/**
 * The most a capsule of this machine may take on disk: the state's cap (the whole memory and the
 * devices' overhead), the disk layers over the bottom one and the mounted disks as allocated now
 * (the capsule holds them compressed), and the small files. An over-estimate by design: what it
 * promises room for always fits.
 */
export async function capsuleWorstCase(machine: Pick<Machine, 'disk' | 'views' | 'spec'>): Promise<number> {
  const layers = [machine.disk.path, ...machine.disk.chain.slice(0, -1).map((layer) => layer.path), ...[...machine.views.values()].map((view) => view.image)];
  let bytes = stateLimit(machine.spec.memoryMiB * 2 ** 20) + SMALL_FILES_BYTES;
  for (const layer of layers) bytes += await stat(layer).then((info) => info.blocks * 512);
  return bytes;
}

/** The env as the manifest holds it: names only unless the notes ask for the values. Pure. */
export function manifestEnv(notes: Pick<CapsuleNotes, 'env' | 'envValues'>): Pick<CapsuleManifest, 'env' | 'envNames'> {
  if (!notes.env) return {};
  return notes.envValues === true ? { env: notes.env } : { envNames: Object.keys(notes.env) };
}

/** The running QEMU's own version (QMP query-version: no parsing of --version text). */
async function runningVersion(machine: Machine): Promise<string> {
  const { qemu } = await machine.qmp.execute<{ qemu: { major: number; minor: number; micro: number } }>('query-version');
  return `${qemu.major}.${qemu.minor}.${qemu.micro}`;
}

/**
 * The machine type QEMU resolved its alias to (q35 → pc-q35-7.2): a restore must ask for this one,
 * since a newer QEMU's q35 is a different machine.
 */
async function versionedMachineType(machine: Machine): Promise<string> {
  const type = await machine.qmp.execute<string>('qom-get', { path: '/machine', property: 'type' });
  return type.replace(/-machine$/, '');
}

/**
 * Streams every layer between the guest's top and the base into the top (QEMU's block-stream, the
 * guest paused): the top then holds all the guest's changes, over the base alone.
 */
async function streamToBase(machine: Machine, basePath: string, signal: AbortSignal): Promise<void> {
  const qmp = machine.qmp;
  const jobId = 'kvmtest-capsule';
  let onEvent: ((event: QmpEvent) => void) | undefined;
  let onAbort: (() => void) | undefined;
  const done = new Promise<void>((resolve, reject) => {
    onEvent = (event) => {
      if (event.data?.device !== jobId) return;
      if (event.event === 'BLOCK_JOB_COMPLETED') {
        if (event.data.error) reject(kvmtestError('CAPSULE_FAILED', `streaming the disk into one layer failed: ${String(event.data.error)}`));
        else resolve();
      } else if (event.event === 'BLOCK_JOB_CANCELLED' || event.event === 'BLOCK_JOB_ERROR') reject(kvmtestError('CAPSULE_FAILED', `streaming the disk into one layer failed (${event.event})`));
    };
    qmp.on('event', onEvent);
    onAbort = () => reject(kvmtestError('ABORTED', 'the capsule was aborted', { cause: signal.reason }));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  done.catch(() => {});
  try {
    await qmp.execute('block-stream', { 'job-id': jobId, device: machine.disk.node, base: basePath, 'backing-file': basePath });
    await Promise.race([done, machine.fatal]);
  } finally {
    if (onEvent) qmp.off('event', onEvent);
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}

/** A mounted view's image (read-only, unchanged since it was attached) as a compressed qcow2 of its own. */
async function convertCompressed(plan: CapsulePlan, from: { path: string; format: 'raw' | 'qcow2' }, to: string): Promise<void> {
  const result = await execa(plan.tools.qemuImg, ['convert', '-U', '-c', '-f', from.format, '-O', 'qcow2', from.path, to], { reject: false });
  if (result.exitCode !== 0) throw kvmtestError('CAPSULE_FAILED', `copying a mounted disk (${from.path}) failed: ${result.stderr.trim().split('\n').pop()}`);
}

/**
 * The guest's top layer (now over the base alone) as a new qcow2 with compressed clusters whose
 * backing is the base: qemu-img opens exactly top + base (the chain is spelled out, headers are not
 * followed) and copies only what the top holds (-B).
 */
async function copyDisk(plan: CapsulePlan, top: string, to: string): Promise<void> {
  const base = baseChain(plan.base);
  const source = { driver: 'qcow2', file: { driver: 'file', filename: top }, backing: backingNode(base) };
  const result = await execa(plan.tools.qemuImg, ['convert', '-U', '-c', '-O', 'qcow2', '-B', base[0]!.path, '-F', base[0]!.format, `json:${JSON.stringify(source)}`, to], {
    reject: false,
  });
  if (result.exitCode !== 0) throw kvmtestError('CAPSULE_FAILED', `copying the guest's disk failed: ${result.stderr.trim().split('\n').pop()}`);
}
