import { access, constants } from 'node:fs/promises';
import { resolve } from 'node:path';
import { execa } from 'execa';
import { InputError } from '../errors.js';

export type DiskFormat = 'qcow2' | 'raw';

export interface DiskInfo {
  path: string;
  format: DiskFormat;
  virtualSize: number;
  backingFile?: string;
}

/** Reads a base image's format with `qemu-img info`; rejects what is not a usable disk image. */
export async function inspectDisk(qemuImg: string, path: string): Promise<DiskInfo> {
  const abs = resolve(path);
  try {
    await access(abs, constants.R_OK);
  } catch (error) {
    throw new InputError('IMAGE_NOT_FOUND', `image ${path} does not exist or cannot be read`, { cause: error });
  }
  // --backing-chain would fail loudly on a missing backing file: that is what we want
  const result = await execa(qemuImg, ['info', '--output=json', '--backing-chain', abs], { reject: false });
  if (result.exitCode !== 0) {
    throw new InputError('IMAGE_INVALID', `image ${path} cannot be opened by qemu-img: ${result.stderr.trim().split('\n').pop()}`);
  }
  const info = parseDiskInfo(abs, result.stdout);
  if (info.format === 'qcow2') await checkQcow2(qemuImg, abs, path);
  return info;
}

/**
 * A truncated or damaged qcow2 passes `qemu-img info` and then hangs the guest's firmware on its
 * first read: `qemu-img check` (metadata only, milliseconds) finds it first. -U: running guests may
 * have the same base open.
 */
async function checkQcow2(qemuImg: string, abs: string, path: string): Promise<void> {
  const check = await execa(qemuImg, ['check', '-U', '--output=json', abs], { reject: false, lines: false });
  let corruptions = 0;
  try {
    corruptions = (JSON.parse(check.stdout) as { corruptions?: number }).corruptions ?? 0;
  } catch {
    if (check.exitCode === 1 || check.exitCode === 2) corruptions = -1;
  }
  if (corruptions !== 0 || check.exitCode === 2) {
    const size = corruptions > 0 ? `${corruptions} clusters point past its end or overlap: ` : '';
    throw new InputError('IMAGE_INVALID', `image ${path} is a damaged qcow2 (${size}truncated by an interrupted download or copy?); qemu-img check ${path} shows the details. Fetch or copy it again`);
  }
}

/** Parses `qemu-img info --output=json --backing-chain` output. Pure. */
export function parseDiskInfo(path: string, json: string): DiskInfo {
  const parsed = JSON.parse(json) as unknown;
  const top = (Array.isArray(parsed) ? parsed[0] : parsed) as { format?: string; 'virtual-size'?: number; 'backing-filename'?: string; 'full-backing-filename'?: string };
  const format = top.format;
  if (format !== 'qcow2' && format !== 'raw') {
    throw new InputError('IMAGE_INVALID', `image ${path} is in format ${format ?? 'unknown'}; kvmtest boots qcow2 or raw images (convert with: qemu-img convert -O qcow2 ${path} out.qcow2)`);
  }
  const backing = top['full-backing-filename'] ?? top['backing-filename'];
  return { path, format, virtualSize: top['virtual-size'] ?? 0, ...(backing ? { backingFile: backing } : {}) };
}

/** Creates a qcow2 overlay whose backing file is the base image; the base is never written. */
export async function createOverlay(qemuImg: string, base: DiskInfo, overlay: string): Promise<void> {
  const result = await execa(qemuImg, ['create', '-q', '-f', 'qcow2', '-b', base.path, '-F', base.format, overlay], { reject: false });
  if (result.exitCode !== 0) throw new InputError('IMAGE_INVALID', `cannot create an overlay on ${base.path}: ${result.stderr.trim()}`);
}
