import { access, constants, open } from 'node:fs/promises';
import { resolve } from 'node:path';
import { execa } from 'execa';
import { kvmtestError } from '../errors.js';
import { qcow2References, sniffFormat } from './qcow2-header.js';

export type DiskFormat = 'qcow2' | 'raw';

/** One image of a backing chain, as QEMU is told to open it (read-only). */
export interface BackingLink {
  path: string;
  format: DiskFormat;
}

export interface DiskInfo {
  path: string;
  format: DiskFormat;
  virtualSize: number;
  backingFile?: string;
  /** The images beneath this one, nearest first: only a local image the user gave may have them. */
  chain?: BackingLink[];
}

/** The base and what lies beneath it, nearest first: the chain QEMU's blockdev names explicitly. */
export function baseChain(base: DiskInfo): BackingLink[] {
  return [{ path: base.path, format: base.format }, ...(base.chain ?? [])];
}

/**
 * Reads the format of a base image the user gave as a path with `qemu-img info`; rejects what is
 * not a usable disk image. The user's own file may have a backing chain (they asked for it), but
 * no image in it may name an external data file (IMAGE_INVALID).
 */
export async function inspectDisk(qemuImg: string, path: string): Promise<DiskInfo> {
  const abs = await readable(path);
  // an external data file is a second host file read as the disk, which nobody typed: refused before qemu-img opens it
  const top = qcow2References(await readHead(abs));
  if (top?.dataFile !== undefined) refuseReferences(`image ${path}`, { dataFile: top.dataFile });
  // --backing-chain would fail loudly on a missing backing file: that is what we want
  const result = await execa(qemuImg, ['info', '--output=json', '--backing-chain', abs], { reject: false });
  if (result.exitCode !== 0) {
    throw kvmtestError('IMAGE_INVALID', `image ${path} cannot be opened by qemu-img: ${result.stderr.trim().split('\n').pop()}`);
  }
  const info = parseDiskInfo(abs, result.stdout);
  if (info.format === 'qcow2') await checkQcow2(qemuImg, abs, path);
  return info;
}

/**
 * Probes a base image that came from the network (catalog, URL, cached blob) or a build, opened as
 * the format it was declared with and never guessed (`what` says where it came from, for messages).
 * A backing file or an external data file would let the guest read a host file as its disk: refused.
 */
export async function inspectUntrusted(qemuImg: string, path: string, declared: DiskFormat | undefined, what: string): Promise<DiskInfo> {
  const abs = await readable(path);
  const head = await readHead(abs);
  const format = declared ?? sniffFormat(head);
  if (format !== 'qcow2' && format !== 'raw') {
    throw kvmtestError('IMAGE_INVALID', `${what} is in format ${format}; kvmtest boots qcow2 or raw images`);
  }
  // read from the header first, so that qemu-img never opens what it names
  if (format === 'qcow2') refuseReferences(what, qcow2References(head) ?? {});
  const result = await execa(qemuImg, ['info', '--output=json', '-f', format, abs], { reject: false });
  if (result.exitCode !== 0) {
    throw kvmtestError('IMAGE_INVALID', `${what} cannot be opened as ${format} by qemu-img: ${result.stderr.trim().split('\n').pop()}`);
  }
  const info = JSON.parse(result.stdout) as QemuImgInfo;
  refuseReferences(what, { backingFile: info['backing-filename'], dataFile: info['format-specific']?.data?.['data-file'] });
  if (format === 'qcow2') await checkQcow2(qemuImg, abs, path);
  return { path: abs, format, virtualSize: info['virtual-size'] ?? 0 };
}

interface QemuImgInfo {
  format?: string;
  'virtual-size'?: number;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
  'format-specific'?: { data?: { 'data-file'?: string } };
}

function refuseReferences(what: string, refs: { backingFile?: string | undefined; dataFile?: string | undefined }): void {
  if (refs.backingFile !== undefined) {
    throw kvmtestError('IMAGE_INVALID', `${what} names a backing file ${JSON.stringify(refs.backingFile)}: refused, a base image must be self-contained`);
  }
  if (refs.dataFile !== undefined) {
    throw kvmtestError('IMAGE_INVALID', `${what} names an external data file ${JSON.stringify(refs.dataFile)}: refused, a base image must be self-contained`);
  }
}

async function readable(path: string): Promise<string> {
  const abs = resolve(path);
  try {
    await access(abs, constants.R_OK);
  } catch (error) {
    throw kvmtestError('IMAGE_NOT_FOUND', `image ${path} does not exist or cannot be read`, { cause: error });
  }
  return abs;
}

/** Bytes of an image's start read before anything opens it: a qcow2 header, its extensions and (usually) its backing file name. */
export const HEAD_BYTES = 65536;

/**
 * The first HEAD_BYTES of an image. `noFollow`: a file that is input from elsewhere (a capsule's) is
 * opened without following a link, and a FIFO planted there never blocks the open.
 */
export async function readHead(abs: string, options: { noFollow?: boolean } = {}): Promise<Buffer> {
  const flags = options.noFollow ? constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK : constants.O_RDONLY;
  const handle = await open(abs, flags);
  try {
    const buffer = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/**
 * A truncated or damaged qcow2 passes `qemu-img info` and then hangs the guest's firmware on its
 * first read: `qemu-img check` (metadata only, milliseconds) finds it first. -U: running guests may
 * have the same base open.
 */
async function checkQcow2(qemuImg: string, abs: string, path: string): Promise<void> {
  const check = await execa(qemuImg, ['check', '-U', '-f', 'qcow2', '--output=json', abs], { reject: false, lines: false });
  let corruptions = 0;
  try {
    corruptions = (JSON.parse(check.stdout) as { corruptions?: number }).corruptions ?? 0;
  } catch {
    if (check.exitCode === 1 || check.exitCode === 2) corruptions = -1;
  }
  if (corruptions !== 0 || check.exitCode === 2) {
    const size = corruptions > 0 ? `${corruptions} clusters point past its end or overlap: ` : '';
    throw kvmtestError('IMAGE_INVALID', `image ${path} is a damaged qcow2 (${size}truncated by an interrupted download or copy?); qemu-img check ${path} shows the details. Fetch or copy it again`);
  }
}

/** Parses `qemu-img info --output=json --backing-chain` output. Pure. */
export function parseDiskInfo(path: string, json: string): DiskInfo {
  const parsed = JSON.parse(json) as unknown;
  const infos = (Array.isArray(parsed) ? parsed : [parsed]) as (QemuImgInfo & { filename?: string })[];
  const top = infos[0]!;
  const format = checkFormat(path, top.format);
  // every image of the chain (each the user's or named by one) is self-contained: no external data file
  for (const link of infos) {
    const dataFile = link['format-specific']?.data?.['data-file'];
    if (dataFile !== undefined) refuseReferences(`image ${link.filename ?? path}`, { dataFile });
  }
  const chain = infos.slice(1).map((link) => ({ path: link.filename ?? '?', format: checkFormat(link.filename ?? '?', link.format) }));
  const backing = top['full-backing-filename'] ?? top['backing-filename'];
  return { path, format, virtualSize: top['virtual-size'] ?? 0, ...(backing ? { backingFile: backing } : {}), ...(chain.length > 0 ? { chain } : {}) };
}

function checkFormat(path: string, format: string | undefined): DiskFormat {
  if (format !== 'qcow2' && format !== 'raw') {
    throw kvmtestError('IMAGE_INVALID', `image ${path} is in format ${format ?? 'unknown'}; kvmtest boots qcow2 or raw images (convert with: qemu-img convert -O qcow2 ${path} out.qcow2)`);
  }
  return format;
}

/**
 * Creates a qcow2 overlay whose backing file is the base image; the base is never written. With the
 * size known, -u: qemu-img does not open the base (nor anything its header names).
 */
export async function createOverlay(qemuImg: string, base: Pick<DiskInfo, 'path' | 'format' | 'virtualSize'>, overlay: string): Promise<void> {
  const size = base.virtualSize > 0 ? ['-u', overlay, String(base.virtualSize)] : [overlay];
  const result = await execa(qemuImg, ['create', '-q', '-f', 'qcow2', '-b', base.path, '-F', base.format, ...size], { reject: false });
  if (result.exitCode !== 0) throw kvmtestError('IMAGE_INVALID', `cannot create an overlay on ${base.path}: ${result.stderr.trim()}`);
}
