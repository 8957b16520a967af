import type { Accel } from '../host/accel.js';
import { SANDBOX_ARG } from '../host/sandbox.js';
import { PORT_NAME } from '../protocol/shared.js';
import { defaultArch, type MachineArch, machineFor } from './arch.js';

export type BootMethod =
  | { kind: 'firmware'; firmware: 'bios' }
  | { kind: 'firmware'; firmware: 'uefi'; code: string; vars: string }
  /** riscv64: QEMU's own OpenSBI (-bios default) starts this U-Boot, which boots what the disk's extlinux.conf names. */
  | { kind: 'firmware'; firmware: 'uboot'; loader: string }
  | { kind: 'kernel'; kernel: string; initrd?: string; append?: string };

export interface PortForward {
  host: number;
  guest: number;
}

/** Everything that shapes the QEMU command line. */
export interface MachineSpec {
  name: string;
  /** The guest's architecture (QEMU's name); default the host's, as the qemu-system binary and catalog image are. Picks the machine type. */
  arch?: MachineArch;
  accel: Accel;
  /**
   * A named CPU model, run with `enforce` (QEMU refuses to start where the host cannot give every
   * feature); default the host's own under KVM, every feature TCG has otherwise.
   */
  cpuModel?: string;
  /** A versioned machine type (pc-q35-7.2) instead of the architecture's alias: what a restored capsule was saved on. */
  machineType?: string;
  cpus: number;
  memoryMiB: number;
  /** The guest's writable qcow2 overlay. */
  disk: string;
  /** The overlay's backing chain, nearest first, opened read-only and ended by `backing: null`: never what a header names. */
  backing: { path: string; format: 'qcow2' | 'raw' }[];
  /** The NoCloud seed ISO. */
  seed: string;
  boot: BootMethod;
  qmpSocket: string;
  agentSocket: string;
  /**
   * false: no NIC at all. Otherwise user-mode networking with forwards bound to 127.0.0.1;
   * `outbound: false` isolates the guest (slirp restrict=on): forwards work, the guest reaches nothing.
   */
  network: false | { forwards: PortForward[]; outbound?: boolean };
  /** QEMU's seccomp sandbox (where the build supports it: see host/sandbox.ts). */
  sandbox?: boolean;
  /** Appended verbatim, for what kvmtest does not model. */
  extraArgs?: string[];
  /** Read-only disks on the attach controller from the start (a restored capsule's mounted views), by SCSI target. */
  attached?: { target: number; path: string; format: 'raw' | 'qcow2' }[];
  /**
   * The guest's RAM in this file instead of anonymous memory: `shared` for a snapshot template (its
   * writes land in the file, so a save need not carry the RAM), private copy-on-write for a clone
   * (reads come from the file's page cache, shared by all clones; writes never reach the file).
   */
  memoryFile?: { path: string; shared: boolean };
  /**
   * Without a memoryFile: the RAM in an anonymous backend named like a file's (RAM_BACKEND_ID), so that
   * a state saved from a machine whose RAM was a file (a capsule of a restored guest) loads here.
   */
  ramBackend?: boolean;
  /**
   * Restore from this saved state file instead of booting: the launcher opens it as INCOMING_STATE_FD
   * and QEMU waits (`-incoming defer`) until QMP sets the capabilities and sends INCOMING_STATE_URI.
   */
  incomingState?: string;
  /**
   * Wait (`-incoming defer`) for a state that QMP's migrate-incoming names by URI: a checkpoint's
   * converter receives a running guest's stream over a unix socket.
   */
  incomingDeferred?: boolean;
}

/** The fd QEMU reads an incoming state from: no shell, no fork (the sandbox denies spawn). */
export const INCOMING_STATE_FD = 3;
/** The URI given to QMP migrate-incoming: QEMU 7.2 reads a numeric fd: as an inherited descriptor. */
export const INCOMING_STATE_URI = `fd:${INCOMING_STATE_FD}`;
/** The guest disk's top block node as the machine starts (a checkpoint adds nodes above it). */
export const DISK_NODE = 'disk0';
/** The virtio-scsi controller present from boot that bulk pushes attach their disks to. */
export const ATTACH_BUS = 'attach0';
/** The block node and device ids of the disk on SCSI target `target` of the attach controller (hot-plugged or from the start alike). */
export function attachNode(target: number): string {
  return `attach-${target}`;
}
export function attachDevice(target: number): string {
  return `attach-dev-${target}`;
}
/** The memory backend's id, named by `-machine memory-backend=`. */
export const RAM_BACKEND_ID = 'ram0';

/** QEMU's option syntax doubles commas inside values. */
export function escapeOpt(value: string): string {
  return value.replaceAll(',', ',,');
}

/** Turns a machine spec into QEMU's argv (without the binary). Pure. */
export const AGENT_PORT_ID = 'agentport';

export function buildQemuArgs(spec: MachineSpec): string[] {
  const machine = machineFor(spec.arch ?? defaultArch());
  const args: string[] = [
    '-name',
    `${escapeOpt(spec.name)},process=${escapeOpt(spec.name)}`,
    '-machine',
    `${machineType(machine.machine, spec.machineType)},graphics=off${spec.memoryFile || spec.ramBackend ? `,memory-backend=${RAM_BACKEND_ID}` : ''}`,
    ...(spec.accel === 'kvm' ? ['-accel', 'kvm'] : ['-accel', 'tcg,thread=multi']),
    '-cpu',
    spec.cpuModel ? `${spec.cpuModel},enforce` : spec.accel === 'kvm' ? machine.cpu.kvm : machine.cpu.tcg,
    '-smp',
    String(spec.cpus),
    '-m',
    `${spec.memoryMiB}M`,
    ...(spec.memoryFile ? ['-object', memoryBackend(spec.memoryFile, spec.memoryMiB)] : spec.ramBackend ? ['-object', `memory-backend-ram,id=${RAM_BACKEND_ID},size=${spec.memoryMiB}M`] : []),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    ...(spec.sandbox ? ['-sandbox', SANDBOX_ARG] : []),
    // the serial console comes out on QEMU's stdout, where the host logs and watches it
    '-chardev',
    'stdio,id=console0,signal=off',
    '-serial',
    'chardev:console0',
    '-chardev',
    `socket,id=qmp0,path=${escapeOpt(spec.qmpSocket)},server=on,wait=off`,
    '-mon',
    'chardev=qmp0,mode=control',
    // entropy at boot: without it python and cloud-init can stall waiting for the pool
    '-device',
    'virtio-rng-pci',
    // a new generation id on every start: Linux reseeds its RNG when a snapshot is restored (x86's ACPI only)
    ...(machine.vmgenid ? ['-device', 'vmgenid,guid=auto'] : []),
    '-blockdev',
    JSON.stringify({ driver: 'qcow2', 'node-name': DISK_NODE, discard: 'unmap', file: { driver: 'file', filename: spec.disk }, backing: backingNode(spec.backing) }),
    '-device',
    'virtio-blk-pci,drive=disk0,bootindex=1',
    '-blockdev',
    JSON.stringify({ driver: 'raw', 'node-name': 'seed0', 'read-only': true, file: { driver: 'file', filename: spec.seed, 'read-only': true } }),
    '-device',
    'virtio-blk-pci,drive=seed0',
    '-device',
    'virtio-serial-pci,id=vser0',
    '-chardev',
    `socket,id=agent0,path=${escapeOpt(spec.agentSocket)},server=on,wait=off`,
    // the id names the port in QMP's VSERPORT_CHANGE events: the agent closing it means the agent died
    '-device',
    `virtserialport,bus=vser0.0,chardev=agent0,name=${PORT_NAME},id=${AGENT_PORT_ID}`,
    // bulk pushes hot-plug a disk here (a SCSI target, no PCI hot-plug), on clones of a snapshot too
    '-device',
    `virtio-scsi-pci,id=${ATTACH_BUS}`,
    ...(spec.attached ?? []).flatMap((disk) => [
      '-blockdev',
      // backing: null: a qcow2's header names no file QEMU would open
      JSON.stringify({
        driver: disk.format,
        'node-name': attachNode(disk.target),
        'read-only': true,
        file: { driver: 'file', filename: disk.path, 'read-only': true },
        ...(disk.format === 'qcow2' ? { backing: null } : {}),
      }),
      '-device',
      `scsi-hd,id=${attachDevice(disk.target)},bus=${ATTACH_BUS}.0,scsi-id=${disk.target},lun=0,drive=${attachNode(disk.target)}`,
    ]),
  ];
  if (spec.network === false) args.push('-nic', 'none');
  else {
    const forwards = spec.network.forwards.map((f) => `,hostfwd=tcp:127.0.0.1:${f.host}-:${f.guest}`).join('');
    // restrict=on: slirp routes nothing out of the guest, yet host forwards still reach in
    args.push('-nic', `user,model=virtio-net-pci${spec.network.outbound === false ? ',restrict=on' : ''}${forwards}`);
  }
  const boot = spec.boot;
  if (boot.kind === 'kernel') {
    args.push('-kernel', boot.kernel);
    if (boot.initrd) args.push('-initrd', boot.initrd);
    if (boot.append) args.push('-append', boot.append);
  } else if (boot.firmware === 'uefi') {
    args.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${escapeOpt(boot.code)}`, '-drive', `if=pflash,format=raw,unit=1,file=${escapeOpt(boot.vars)}`);
  } else if (boot.firmware === 'uboot') {
    args.push('-kernel', boot.loader);
  }
  if (spec.extraArgs) args.push(...spec.extraArgs);
  // defer: the capabilities (x-ignore-shared) must be set before the stream loads, which only QMP can do
  if (spec.incomingState || spec.incomingDeferred) args.push('-incoming', 'defer');
  return args;
}

/** The -machine value: the architecture's (alias and properties), its alias replaced by a versioned type when given. Pure. */
function machineType(machine: string, versioned: string | undefined): string {
  if (!versioned) return machine;
  const at = machine.indexOf(',');
  return at < 0 ? versioned : `${versioned}${machine.slice(at)}`;
}

/** RAM in a file: share=on writes through to it (a template), share=off maps it private (a clone). Never readonly=on or memfd (QEMU 7.2). */
function memoryBackend(file: NonNullable<MachineSpec['memoryFile']>, memoryMiB: number): string {
  return `memory-backend-file,id=${RAM_BACKEND_ID},size=${memoryMiB}M,mem-path=${escapeOpt(file.path)},share=${file.shared ? 'on' : 'off'}`;
}

/** The backing chain as nested read-only nodes, the last with `backing: null`: QEMU opens exactly these files. Pure. */
export function backingNode(chain: MachineSpec['backing']): object | null {
  let below: object | null = null;
  for (const link of [...chain].reverse()) {
    const file = { driver: 'file', filename: link.path, 'read-only': true };
    // raw has no backing option (and cannot name a backing file)
    below = { driver: link.format, 'read-only': true, file, ...(link.format === 'qcow2' ? { backing: below } : {}) };
  }
  return below;
}
