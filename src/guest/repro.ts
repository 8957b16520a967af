import { rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import createDebug from 'debug';
import { dir as tmpDir } from 'tmp-promise';
import { hostQemu, incompatibility } from '../capsule/compat.js';
import { copyVerified, decompressState, verifyAttached, verifyFiles } from '../capsule/files.js';
import { capsuleBaseImage, checkHostRoom, hostRoom, refuseDiskReferences, reproNetwork } from '../capsule/input.js';
import { attachedFileName, CAPSULE_FILES, type CapsuleManifest, readManifest } from '../capsule/manifest.js';
import { isKvmtestError, type KvmtestError, kvmtestError } from '../errors.js';
import type { AccelRequest } from '../host/accel.js';
import { qemuVersion } from '../host/tools.js';
import { baseChain } from '../image/disk.js';
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
   * Give the machine the network its manifest records, outbound connections included. Off by
   * default: a restored machine keeps its NIC (the saved devices expect it) but reaches nothing.
   */
  network?: boolean;
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
  // QEMU opens private copies checked as they are made: nothing swapped into the capsule after its check runs
  const tmp = await tmpDir({ prefix: 'kvmtest', unsafeCleanup: true, mode: 0o700 });
  const tracked = track(`kvmtest-repro-${manifest.hostname}`, tmp.path);
  const remove = async () => {
    await rm(tmp.path, { recursive: true, force: true });
    tracked.untrack();
  };
  try {
    await tracked.registered;
    const copy = async (role: 'disk' | 'seed' | 'uefiVars') => {
      const to = join(tmp.path, CAPSULE_FILES[role]);
      await copyVerified(dir, files[role]!, to, manifest.files[role]!);
      return to;
    };
    const disk = await copy('disk');
    const uefiVars = files.uefiVars ? await copy('uefiVars') : undefined;
    const prep = await prepareBase(dir, manifest, options, uefiVars);
    const chain = baseChain(prep.base);
    if (options.cold) {
      const { guest, machine } = await start(prep, performance.now(), { lower: [{ path: disk, format: 'qcow2' }, ...chain] });
      machine.afterStop(remove);
      return { guest, manifest };
    }
    const reason = incompatibility(manifest, await hostQemu(prep.tools.qemu, await qemuVersion(prep.tools.qemu), prep.choice.accel));
    if (reason) throw incompatible(dir, reason);
    checkHostRoom(dir, manifest, await hostRoom(tmp.path), `the temporary directory ${tmp.path}`);
    const seed = await copy('seed');
    const views: { target: number; path: string; format: 'qcow2' }[] = [];
    for (const [k, a] of attached.entries()) {
      const to = join(tmp.path, attachedFileName(a.target));
      await copyVerified(dir, a.path, to, manifest.attached![k]!);
      views.push({ target: a.target, path: to, format: 'qcow2' });
    }
    const state = join(tmp.path, 'state.bin');
    prep.progress.phase('unpacking the state');
    await decompressState(dir, files.state!, state, manifest.stateBytes, manifest.files.state);
    // the disks it had mounted are there from the start, on the same targets: the saved devices expect them
    const opts = { ...prep.opts, machineType: manifest.machine.type, ...(manifest.machine.ramBackend ? { ramBackend: true } : {}), ...(views.length > 0 ? { attached: views } : {}) };
    const { guest, machine } = await start({ ...prep, opts }, performance.now(), { incoming: { disk, chain, seed, state } });
    machine.afterStop(remove);
    debug('capsule %s restored as %s', dir, guest.info.name);
    return { guest, manifest };
  } catch (error) {
    await remove();
    if (!options.cold && isKvmtestError(error) && RESTORE_FAILURES.has(error.code) && !options.signal?.aborted) {
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
  const image = await capsuleBaseImage(dir, manifest, options.base);
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
    network: reproNetwork(m.network, options.network === true),
    hostname: manifest.hostname,
    ...(m.qemuArgs ? { qemuArgs: m.qemuArgs } : {}),
    progress: options.progress ?? false,
    ...(options.signal ? { signal: options.signal } : {}),
  };
  let prep: Prepared;
  try {
    // even a --base the user gave is opened as a capsule's base: declared format, no backing file, no data file
    prep = await prepare(boot, { untrusted: { format: manifest.base.format } });
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
      `the capsule ${dir} lies on the base image ${manifest.base.name} with sha256 ${manifest.base.sha256}; ${prep.base.path} here has other content (built or pulled at another time?). Copy the base from the machine that saved the capsule and pass --base FILE`,
    );
  }
  if (m.boot.kind === 'firmware' && m.boot.firmware === 'uefi' && (!(await isRegularFile(m.boot.code, FIRMWARE_MAX_BYTES)) || (await fileDigest(m.boot.code)) !== m.boot.codeSha256)) {
    throw incompatible(dir, `it booted with the UEFI firmware ${m.boot.code} (sha256 ${m.boot.codeSha256}), which is not here with that content`);
  }
  return prep;
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
