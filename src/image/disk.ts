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
  return parseDiskInfo(abs, result.stdout);
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
