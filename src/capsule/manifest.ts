// A capsule's manifest: what it holds and how to restore it. Written by the host, but read back from
// wherever the capsule travelled (a CI artifact, a colleague's download): checked field by field.

import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { kvmtestError } from '../errors.js';
import { isMachineArch, MACHINE_ARCHES, type MachineArch } from '../qemu/arch.js';

export const CAPSULE_KIND = 'kvmtest-capsule';
export const CAPSULE_FORMAT = 1;
export const MANIFEST_NAME = 'manifest.json';
/** A manifest is a few KB (the env and command are the user's): anything past this is not one. */
export const MANIFEST_MAX_BYTES = 256 * 1024;

/** The files of a capsule, by role; their names are fixed, never read from the manifest. */
export const CAPSULE_FILES = {
  /** QEMU's whole migration stream (RAM and devices), gzip. */
  state: 'state.gz',
  /** The guest's disk as a qcow2 over the base image (compressed clusters; the base is not in it). */
  disk: 'disk.qcow2',
  seed: 'seed.iso',
  uefiVars: 'uefi-vars.fd',
  console: 'console.log',
} as const;
export type CapsuleFileRole = keyof typeof CAPSULE_FILES;

export interface CapsuleFile {
  bytes: number;
  sha256: string;
}

export interface CapsuleManifest {
  kind: typeof CAPSULE_KIND;
  format: typeof CAPSULE_FORMAT;
  createdAt: string;
  /** The matrix cell it was saved from, and why (the cell's status at the time). */
  cell?: { id: string; status: string; attempt: number };
  /** What ran in the guest, as the matrix gave it. */
  command?: string[] | string;
  /** The run's environment with its values: only when the saver asked for them (matrix `capsuleEnv`; older capsules have it too). */
  env?: Record<string, string>;
  /** The names of the run's environment, without values (a value may be a secret): what a capsule holds by default. */
  envNames?: string[];
  cwd?: string;
  /** Milliseconds per phase of the attempt, up to the save. */
  durations?: Record<string, number>;
  /** The guest's hostname (kept by a restore). */
  hostname: string;
  qemu: { version: string };
  machine: {
    arch: MachineArch;
    /** The versioned machine type it ran on (pc-q35-7.2): a restore asks for exactly this one. */
    type: string;
    /** The named CPU model it ran on (or 'host'/'max' when none was pinned: such a capsule restores on a like host only). */
    cpu: string;
    accel: string;
    cpus: number;
    memoryMiB: number;
    /** U-Boot (riscv64) is loaded into RAM, which the state carries: any U-Boot restores it. */
    boot: { kind: 'firmware'; firmware: 'bios' | 'uboot' } | { kind: 'firmware'; firmware: 'uefi'; code: string; codeSha256: string } | { kind: 'kernel' };
    network: false | { guestPorts: number[]; outbound: boolean };
    /** Its RAM was a named backend (a guest restored from a snapshot): a restore names its RAM the same. */
    ramBackend?: boolean;
    qemuArgs?: string[];
  };
  /** The base image the disk lies on: by name (to pull or build it) and content digest (to know it is the one). */
  base: { name: string; sha256: string; format: 'qcow2' | 'raw'; virtualSize: number };
  /** Uncompressed size of the state stream. */
  stateBytes: number;
  files: { state: CapsuleFile; disk: CapsuleFile; seed: CapsuleFile; console?: CapsuleFile; uefiVars?: CapsuleFile };
  /** Read-only disks the guest had mounted (a toolchain, a view), each as `attach-<target>.qcow2` in the capsule. */
  attached?: (CapsuleFile & { target: number })[];
}

/** The file of the disk a capsule's guest had on SCSI target `target`. */
export function attachedFileName(target: number): string {
  return `attach-${target}.qcow2`;
}
/** At most this many mounted disks travel in a capsule. */
export const MAX_ATTACHED = 16;
/** Forwarded guest ports a manifest may list (each opens a port on the host's 127.0.0.1 at repro; a cell forwards a handful). */
export const MAX_GUEST_PORTS = 32;

/** The manifest's bytes: keys in a fixed order, two-space indent. Pure. */
export function renderManifest(manifest: CapsuleManifest): string {
  return `${JSON.stringify(manifest, null, 2)}\n`;
}

/** Reads a capsule's manifest without following a link, bounded, and checks it; anything wrong is CAPSULE_DAMAGED. */
export async function readManifest(dir: string): Promise<CapsuleManifest> {
  const path = join(dir, MANIFEST_NAME);
  let text: string;
  try {
    // O_NONBLOCK: a FIFO planted as the manifest must not block the open (it is then refused as not a file)
    const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw damaged(dir, `${MANIFEST_NAME} is not a regular file`);
      if (info.size > MANIFEST_MAX_BYTES) throw damaged(dir, `${MANIFEST_NAME} is ${info.size} bytes (a manifest is at most ${MANIFEST_MAX_BYTES})`);
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (error instanceof Error && 'code' in error && typeof (error as NodeJS.ErrnoException).code === 'string' && (error as NodeJS.ErrnoException).errno !== undefined) {
      const code = (error as NodeJS.ErrnoException).code;
      const why =
        code === 'ENOENT'
          ? `it has no ${MANIFEST_NAME} (is this the capsule directory, DIR/cells/<id>/capsule?)`
          : code === 'ELOOP'
            ? `${MANIFEST_NAME} is a symbolic link`
            : `${MANIFEST_NAME} cannot be read (${code})`;
      throw damaged(dir, why);
    }
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw damaged(dir, `${MANIFEST_NAME} is not JSON`);
  }
  return checkManifest(parsed, dir);
}

/** Checks a parsed manifest field by field (it may come from anywhere); throws CAPSULE_DAMAGED naming the field. Pure. */
export function checkManifest(value: unknown, dir = 'the capsule'): CapsuleManifest {
  const bad = (field: string, expected: string): never => {
    throw damaged(dir, `${MANIFEST_NAME}: "${field}" should be ${expected}`);
  };
  const m = record(value) ?? bad('(top level)', 'an object');
  if (m.kind !== CAPSULE_KIND) bad('kind', JSON.stringify(CAPSULE_KIND));
  if (m.format !== CAPSULE_FORMAT) bad('format', `${CAPSULE_FORMAT} (this kvmtest reads capsule format ${CAPSULE_FORMAT} only)`);
  if (typeof m.createdAt !== 'string' || Number.isNaN(Date.parse(m.createdAt))) bad('createdAt', 'a date');
  if (typeof m.hostname !== 'string' || !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(m.hostname)) bad('hostname', 'a host name');
  const qemu = record(m.qemu) ?? bad('qemu', 'an object');
  if (typeof qemu.version !== 'string' || !/^\d+\.\d+(\.\d+)?$/.test(qemu.version)) bad('qemu.version', 'a version such as 7.2.19');
  const machine = record(m.machine) ?? bad('machine', 'an object');
  for (const field of ['arch', 'type', 'cpu', 'accel'] as const) {
    if (typeof machine[field] !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(machine[field] as string)) bad(`machine.${field}`, 'a QEMU name');
  }
  if (!isMachineArch(machine.arch)) bad('machine.arch', MACHINE_ARCHES.join(' or '));
  if (!isInt(machine.cpus, 1, 1024)) bad('machine.cpus', 'a whole number from 1 to 1024');
  if (!isInt(machine.memoryMiB, 16, 4 * 1024 * 1024)) bad('machine.memoryMiB', 'a whole number of MiB');
  const boot = record(machine.boot) ?? bad('machine.boot', 'an object');
  if (boot.kind === 'firmware' && boot.firmware === 'uefi') {
    if (typeof boot.code !== 'string' || !boot.code.startsWith('/')) bad('machine.boot.code', 'an absolute path');
    if (!isSha256(boot.codeSha256)) bad('machine.boot.codeSha256', 'a sha256');
  } else if (!(boot.kind === 'kernel' || (boot.kind === 'firmware' && (boot.firmware === 'bios' || boot.firmware === 'uboot'))))
    bad('machine.boot', "{ kind: 'kernel' } or { kind: 'firmware', firmware }");
  if (machine.network !== false) {
    const network = record(machine.network) ?? bad('machine.network', 'false or { guestPorts, outbound }');
    const ports = network.guestPorts;
    if (!Array.isArray(ports) || ports.length > MAX_GUEST_PORTS || !ports.every((p) => isInt(p, 1, 65535)) || new Set(ports).size !== ports.length) {
      bad('machine.network.guestPorts', `an array of at most ${MAX_GUEST_PORTS} different ports`);
    }
    if (typeof network.outbound !== 'boolean') bad('machine.network.outbound', 'a boolean');
  }
  if (machine.ramBackend !== undefined && typeof machine.ramBackend !== 'boolean') bad('machine.ramBackend', 'a boolean');
  if (machine.qemuArgs !== undefined && !(Array.isArray(machine.qemuArgs) && machine.qemuArgs.every((a) => typeof a === 'string'))) bad('machine.qemuArgs', 'an array of strings');
  const base = record(m.base) ?? bad('base', 'an object');
  if (typeof base.name !== 'string' || base.name.length === 0 || base.name.length > 4096) bad('base.name', 'an image name or path');
  if (!isSha256(base.sha256)) bad('base.sha256', 'a sha256');
  if (base.format !== 'qcow2' && base.format !== 'raw') bad('base.format', "'qcow2' or 'raw'");
  if (!isInt(base.virtualSize, 0, Number.MAX_SAFE_INTEGER)) bad('base.virtualSize', 'a size in bytes');
  const memoryBytes = (machine.memoryMiB as number) * 2 ** 20;
  if (!isInt(m.stateBytes, 1, stateLimit(memoryBytes))) bad('stateBytes', `a size no larger than the guest's memory and ${STATE_OVERHEAD / 2 ** 20} MiB`);
  const files = record(m.files) ?? bad('files', 'an object');
  for (const role of Object.keys(files)) if (!Object.hasOwn(CAPSULE_FILES, role)) bad(`files.${role}`, `absent (a capsule holds ${Object.keys(CAPSULE_FILES).join(', ')})`);
  for (const role of ['state', 'disk', 'seed', 'console', 'uefiVars'] as const) {
    const entry = files[role];
    if (entry === undefined && (role === 'console' || role === 'uefiVars')) continue;
    const file = record(entry) ?? bad(`files.${role}`, 'an object { bytes, sha256 }');
    if (!isInt(file.bytes, 0, Number.MAX_SAFE_INTEGER) || !isSha256(file.sha256)) bad(`files.${role}`, 'an object { bytes, sha256 }');
  }
  if (m.attached !== undefined) {
    if (!Array.isArray(m.attached) || m.attached.length > MAX_ATTACHED) bad('attached', `an array of at most ${MAX_ATTACHED} disks`);
    const targets = new Set<number>();
    for (const [k, entry] of (m.attached as unknown[]).entries()) {
      const disk = record(entry) ?? bad(`attached[${k}]`, 'an object { target, bytes, sha256 }');
      if (!isInt(disk.target, 1, 255) || targets.has(disk.target)) bad(`attached[${k}].target`, 'a SCSI target from 1 to 255, each once');
      targets.add(disk.target as number);
      if (!isInt(disk.bytes, 0, Number.MAX_SAFE_INTEGER) || !isSha256(disk.sha256)) bad(`attached[${k}]`, 'an object { target, bytes, sha256 }');
    }
  }
  if ((boot.firmware === 'uefi') !== (files.uefiVars !== undefined)) bad('files.uefiVars', 'present exactly when the machine boots with UEFI');
  if (m.envNames !== undefined && m.env !== undefined) bad('envNames', 'absent when "env" is there (names and values)');
  for (const [field, ok] of Object.entries(NOTE_CHECKS)) {
    const v = m[field];
    if (v !== undefined && !ok(v)) bad(field, 'as kvmtest writes it');
  }
  return m as unknown as CapsuleManifest;
}

/** The fields the saver's notes fill (each optional): what each must be. */
const NOTE_CHECKS: Record<'command' | 'env' | 'envNames' | 'cwd' | 'durations' | 'cell', (v: unknown) => boolean> = {
  command: (v) => typeof v === 'string' || isStringArray(v),
  env: isStringMap,
  envNames: isStringArray,
  cwd: (v) => typeof v === 'string',
  durations: (v) => record(v) !== undefined && Object.values(v as object).every((d) => typeof d === 'number'),
  cell: (v) => record(v) !== undefined && typeof (v as { id?: unknown }).id === 'string' && typeof (v as { status?: unknown }).status === 'string',
};

/** Device state and ROMs ride beside the RAM in the stream: this much over the guest's memory is allowed. */
export const STATE_OVERHEAD = 256 * 2 ** 20;

/** The most a machine's migration stream may hold: its RAM (zero pages cost nothing) and the overhead. Pure. */
export function stateLimit(memoryBytes: number): number {
  return memoryBytes + STATE_OVERHEAD;
}

export function damaged(dir: string, why: string): Error {
  return kvmtestError('CAPSULE_DAMAGED', `the capsule ${dir} cannot be restored: ${why}`);
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function isInt(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

function isSha256(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9a-f]{64}$/.test(value);
}

function isStringMap(value: unknown): boolean {
  const r = record(value);
  return r !== undefined && Object.values(r).every((v) => typeof v === 'string');
}

function isStringArray(value: unknown): boolean {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}
