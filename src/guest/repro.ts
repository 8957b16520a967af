import { open, rm, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import createDebug from 'debug';
import { dir as tmpDir } from 'tmp-promise';
import { hostQemu, incompatibility } from '../capsule/compat.js';
import { decompressState, READ_NO_FOLLOW, verifyAttached, verifyFiles } from '../capsule/files.js';
import { type CapsuleManifest, damaged, readManifest } from '../capsule/manifest.js';
import { isKvmtestError, type KvmtestError, kvmtestError } from '../errors.js';
import type { AccelRequest } from '../host/accel.js';
import { qemuVersion } from '../host/tools.js';
import { baseChain } from '../image/disk.js';
import { qcow2References } from '../image/qcow2-header.js';
import { track } from '../machine/registry.js';
import { fileDigest } from '../snapshot/digest.js';
import { start } from './boot.js';
import type { Guest } from './guest.js';
import type { BootOptions } from './options.js';
import { type Prepared, prepare } from './prepare.js';

const debug = createDebug('kvmtest:capsule');

export interface ReproOptions {
  /** Boot the capsule's disk afresh instead of restoring its RAM (when this host cannot restore it). */
  cold?: boolean;
  /** The base image file to use (same content as the capsule's: checked by digest); default found by the capsule's base name. */
  base?: string;
  /**
   * Pass the extra QEMU arguments the capsule's manifest records. Off by default: a capsule may come
   * from anywhere, and QEMU arguments can open host files.
   */
  trustQemuArgs?: boolean;
  accel?: AccelRequest;
  progress?: boolean;
  signal?: AbortSignal;
}

export interface Repro {
  guest: Guest;
  manifest: CapsuleManifest;
}

/** Restore failures a capsule from elsewhere can cause (not the caller's abort). */
const RESTORE_FAILURES = new Set(['SNAPSHOT_FAILED', 'QEMU_EXITED', 'BOOT_TIMEOUT', 'KERNEL_PANIC']);
/** Getting the base by name failed: the capsule's base is not here. */
const BASE_FAILURES = new Set(['IMAGE_NOT_FOUND', 'IMAGE_UNKNOWN', 'IMAGE_INVALID', 'DOWNLOAD_FAILED', 'DOWNLOAD_NOT_FOUND', 'DOWNLOAD_TIMEOUT', 'IMAGE_BUILD_FAILED']);

/**
 * Restores a capsule (`kvmtest repro`): checks every file against the manifest (CAPSULE_DAMAGED), finds
 * the base image by name and checks its content digest (CAPSULE_BASE_MISSING), checks this QEMU can
 * load the state (CAPSULE_INCOMPATIBLE), then starts the machine at the saved moment: processes,
 * files and hostname as they were. The capsule's directory is only read; its state is decompressed
 * into a private directory that goes with the guest. With `cold`, boots the capsule's disk afresh.
 */
export async function reproCapsule(capsuleDir: string, options: ReproOptions = {}): Promise<Repro> {
  const dir = resolve(capsuleDir);
  const manifest = await readManifest(dir);
  const files = await verifyFiles(dir, manifest);
  const attached = await verifyAttached(dir, manifest);
  await refuseDiskReferences(dir, files.disk!, true);
  for (const disk of attached) await refuseDiskReferences(dir, disk.path, false);
  const prep = await prepareBase(dir, manifest, options, files.uefiVars);
  const chain = baseChain(prep.base);
  if (options.cold) {
    const { guest } = await start(prep, performance.now(), { lower: [{ path: files.disk!, format: 'qcow2' }, ...chain] });
    return { guest, manifest };
  }
  const reason = incompatibility(manifest, await hostQemu(prep.tools.qemu, await qemuVersion(prep.tools.qemu), prep.choice.accel));
  if (reason) throw incompatible(dir, reason);
  const tmp = await tmpDir({ prefix: 'kvmtest', unsafeCleanup: true, mode: 0o700 });
  const tracked = track(`kvmtest-repro-${manifest.hostname}`, tmp.path);
  const remove = async () => {
    await rm(tmp.path, { recursive: true, force: true });
    tracked.untrack();
  };
  try {
    await tracked.registered;
    const state = join(tmp.path, 'state.bin');
    prep.progress.phase('unpacking the state');
    await decompressState(dir, files.state!, state, manifest.stateBytes);
    // the disks it had mounted are there from the start, on the same targets: the saved devices expect them
    const views = attached.map((a) => ({ target: a.target, path: a.path, format: 'qcow2' as const }));
    const opts = { ...prep.opts, machineType: manifest.machine.type, ...(manifest.machine.ramBackend ? { ramBackend: true } : {}), ...(views.length > 0 ? { attached: views } : {}) };
    const { guest, machine } = await start({ ...prep, opts }, performance.now(), {
      incoming: { disk: files.disk!, chain, seed: files.seed!, state },
    });
    machine.afterStop(remove);
    debug('capsule %s restored as %s', dir, guest.info.name);
    return { guest, manifest };
  } catch (error) {
    await remove();
    if (isKvmtestError(error) && RESTORE_FAILURES.has(error.code) && !options.signal?.aborted) {
      throw incompatible(dir, `QEMU could not resume it here (${error.message.split('\n')[0]})`, error);
    }
    throw error;
  }
}

/** The plan of the capsule's machine on this host: its base found by name (pulled or built if need be) and checked by content. */
async function prepareBase(dir: string, manifest: CapsuleManifest, options: ReproOptions, uefiVars: string | undefined): Promise<Prepared> {
  const m = manifest.machine;
  if (m.qemuArgs && m.qemuArgs.length > 0 && !options.trustQemuArgs) {
    throw incompatible(dir, `it was saved with extra QEMU arguments (${m.qemuArgs.join(' ')}), which kvmtest passes from a capsule only when told to (--trust-qemu-args): they can open host files`);
  }
  // a manifest names its base: a catalog or recipe name, or a path; never a URL to fetch (that takes --base)
  if (!options.base && /^[a-z][a-z0-9+.-]*:\/\//i.test(manifest.base.name)) {
    throw kvmtestError(
      'CAPSULE_BASE_MISSING',
      `the capsule ${dir} names its base by URL (${manifest.base.name}); kvmtest does not fetch what a capsule names: download it yourself and pass --base FILE`,
    );
  }
  const image = options.base ?? manifest.base.name;
  const pinned = m.cpu !== 'host' && m.cpu !== 'max';
  const boot: BootOptions = {
    image,
    arch: m.arch,
    memory: m.memoryMiB,
    cpus: m.cpus,
    ...(pinned ? { cpu: m.cpu } : {}),
    accel: options.accel ?? 'auto',
    ...(m.boot.kind === 'kernel' ? { boot: 'kernel' as const } : {}),
    ...(m.boot.kind === 'firmware' && m.boot.firmware === 'uefi' ? { firmware: 'uefi' as const, uefiCode: m.boot.code, uefiVars: uefiVars! } : {}),
    network: m.network === false ? false : { forwards: m.network.guestPorts.map((guest) => ({ guest })), outbound: m.network.outbound },
    hostname: manifest.hostname,
    ...(m.qemuArgs ? { qemuArgs: m.qemuArgs } : {}),
    progress: options.progress ?? false,
    ...(options.signal ? { signal: options.signal } : {}),
  };
  let prep: Prepared;
  try {
    prep = await prepare(boot);
  } catch (error) {
    if (isKvmtestError(error) && BASE_FAILURES.has(error.code)) {
      throw kvmtestError(
        'CAPSULE_BASE_MISSING',
        `the capsule ${dir} lies on the base image ${manifest.base.name} (sha256 ${manifest.base.sha256}), which is not here: ${error.message.split('\n')[0]}. Copy that image from the machine that saved the capsule and pass --base FILE`,
        { cause: error },
      );
    }
    throw error;
  }
  // a device or FIFO named as the base would be hashed forever: regular files only
  if (!(await isRegularFile(prep.base.path))) throw kvmtestError('CAPSULE_BASE_MISSING', `the capsule ${dir} names ${prep.base.path} as its base image, which is not a regular file`);
  const digest = await fileDigest(prep.base.path);
  if (digest !== manifest.base.sha256) {
    throw kvmtestError(
      'CAPSULE_BASE_MISSING',
      `the capsule ${dir} lies on the base image ${manifest.base.name} with sha256 ${manifest.base.sha256}; ${prep.base.path} here is sha256 ${digest}, another image (built or pulled at another time?). Copy the base from the machine that saved the capsule and pass --base FILE`,
    );
  }
  if (m.boot.kind === 'firmware' && m.boot.firmware === 'uefi' && (!(await isRegularFile(m.boot.code, FIRMWARE_MAX_BYTES)) || (await fileDigest(m.boot.code)) !== m.boot.codeSha256)) {
    throw incompatible(dir, `it booted with the UEFI firmware ${m.boot.code} (sha256 ${m.boot.codeSha256}), which is not here with that content`);
  }
  return prep;
}

/**
 * The capsule's disks are opened by QEMU with their backing chains spelled out, so a backing file a
 * header names is never followed (and a mounted disk may name none); an external data file would be
 * (a host file read as the guest's disk): refused.
 */
async function refuseDiskReferences(dir: string, disk: string, backingAllowed: boolean): Promise<void> {
  const name = basename(disk);
  const handle = await open(disk, READ_NO_FOLLOW);
  try {
    const head = Buffer.alloc(65536);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    const refs = qcow2References(head.subarray(0, bytesRead));
    if (!refs) throw damaged(dir, `${name} is not a qcow2 image`);
    if (refs.dataFile !== undefined) throw damaged(dir, `${name} names an external data file ${JSON.stringify(refs.dataFile)}: refused`);
    if (!backingAllowed && refs.backingFile !== undefined) throw damaged(dir, `${name} names a backing file ${JSON.stringify(refs.backingFile)}: refused`);
  } finally {
    await handle.close();
  }
}

/** Firmware images are a few MB: a larger "firmware" named by a manifest is not one. */
const FIRMWARE_MAX_BYTES = 256 * 2 ** 20;

/** A regular file (after links: a user's base may be one), no larger than `max`. */
async function isRegularFile(path: string, max = Number.MAX_SAFE_INTEGER): Promise<boolean> {
  const info = await stat(path).catch(() => undefined);
  return info?.isFile() === true && info.size <= max;
}

function incompatible(dir: string, reason: string, cause?: KvmtestError): KvmtestError {
  return kvmtestError(
    'CAPSULE_INCOMPATIBLE',
    `the capsule ${dir} cannot be restored on this host: ${reason}. kvmtest repro --cold ${dir} boots its disk afresh instead (files as they were, no processes)`,
    {
      ...(cause ? { cause } : {}),
    },
  );
}
