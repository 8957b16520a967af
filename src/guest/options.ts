import { resolve } from 'node:path';
import { kvmtestError } from '../errors.js';
import type { AccelRequest } from '../host/accel.js';
import type { MachineOptions } from '../machine/plan.js';
import { ARCH_MACHINES, type ArchFirmware, defaultArch, isMachineArch, MACHINE_ARCHES, type MachineArch } from '../qemu/arch.js';
import { type CloudConfig, normaliseCloudConfig } from '../seed/cloud-config.js';
import type { SetupStep } from '../snapshot/layer-key.js';
import { describe, parseCpus, parseDuration, parseMemoryMiB } from '../util/units.js';

export interface BootOptions {
  /** A qcow2 or raw disk image path, a catalog name such as 'debian-12' or 'ubuntu-24.04', or an https URL ending in #sha256=HEX. */
  image: string;
  /**
   * The guest's architecture: 'x86_64', 'aarch64' or 'riscv64'; default the host's. A name means
   * that architecture's image (downloaded, or built from Debian's archive); a path or URL is taken
   * to be one. KVM only where it matches the host, emulated (TCG) otherwise.
   */
  arch?: MachineArch;
  /** Guest RAM: '1G', '512M', or a number of MiB. Default 1G. */
  memory?: string | number;
  /** vCPUs. Default 2. */
  cpus?: number;
  /**
   * A named QEMU CPU model such as 'Nehalem', run with `enforce`; default the host's CPU under KVM and
   * every feature TCG emulates otherwise. A named model is what lets a saved machine (a capsule) move between hosts.
   */
  cpu?: string;
  /** 'auto' (default) uses KVM only where it really works, else TCG with a warning. */
  accel?: AccelRequest;
  /** Boot by the disk's own bootloader (default) or directly from a kernel: 'kernel' uses a named image's own kernel. */
  boot?: 'firmware' | 'kernel';
  /** Direct kernel boot from these host files (implies boot: 'kernel'). */
  kernel?: string;
  initrd?: string;
  append?: string;
  /**
   * Firmware for firmware boot; default the architecture's own: SeaBIOS on x86_64 (or 'uefi' with
   * OVMF's uefiCode/uefiVars), UEFI on aarch64 (AAVMF found on the host unless uefiCode/uefiVars
   * are given), OpenSBI + U-Boot ('uboot') on riscv64.
   */
  firmware?: ArchFirmware;
  uefiCode?: string;
  uefiVars?: string;
  /** Extra cloud-config (object or YAML), merged with kvmtest's own. */
  cloudConfig?: CloudConfig | string;
  /** The guest's hostname; default kvmtest-<random>. */
  hostname?: string;
  /**
   * No network by default. true: user-mode NAT; forwards bind to 127.0.0.1. `outbound: false`
   * isolates the guest: forwards still reach it, but it can open no connection out (not even to the host).
   */
  network?: boolean | { forwards?: { host?: number; guest: number }[]; outbound?: boolean };
  /** How long to wait for the agent's hello. Default 2m on KVM, scaled 5× under TCG. */
  bootTimeout?: string | number;
  signal?: AbortSignal;
  /** Print boot progress to stderr (a live line on a terminal, plain lines in CI). */
  progress?: boolean;
  /** Extra QEMU arguments, appended verbatim. */
  qemuArgs?: string[];
  /**
   * Restore from a warm snapshot of this image and these settings instead of booting (the first
   * use makes it with one cold boot). Falls back to a cold boot, saying why once, where it cannot.
   */
  snapshot?: boolean;
  /**
   * Files to push and a command to run once, captured as a cached layer on the warm snapshot (implies
   * `snapshot`): later boots, in any process, restore straight into the state after it. Keyed by the
   * snapshot, the command, its env and cwd, and the content of what it pushes.
   */
  setup?: SetupOptions;
}

/** A setup step: like a matrix cell's push and run. */
export interface SetupOptions {
  /** Host path → guest path, copied in before the command. Relative host paths resolve against process.cwd(). */
  push?: Record<string, string>;
  /** The command: an argv array, or a string run by /bin/sh -c. */
  run: string[] | string;
  env?: Record<string, string>;
  cwd?: string;
  /** Default 30m. */
  timeout?: string | number;
}

/** Boot options checked and defaulted: everything after resolveBootOptions() reads only this. */
export interface ResolvedBootOptions extends MachineOptions {
  image: string;
  accel: AccelRequest;
  bootMode: 'firmware' | 'kernel';
  kernel?: { kernel: string; initrd?: string; append?: string };
  firmware: ArchFirmware;
  /** Given by the user (x86_64 needs it for UEFI; aarch64 finds the host's AAVMF without it). */
  uefi?: { code: string; vars: string };
  progress: boolean;
  snapshot: boolean;
  setup?: SetupStep;
}

const SETUP_TIMEOUT = '30m';
/** The firmware each architecture's machine can boot with (its default first). */
const FIRMWARES: Record<MachineArch, readonly ArchFirmware[]> = { x86_64: ['bios', 'uefi'], aarch64: ['uefi'], riscv64: ['uboot'] };
/** A CPU model name as QEMU lists them (Nehalem, Skylake-Client-v4, cortex-a72): no commas, so no extra properties. */
const CPU_MODEL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Checks, normalises and defaults boot options; every mistake is an InputError naming the option. Pure. */
export function resolveBootOptions(options: BootOptions): ResolvedBootOptions {
  if (typeof options !== 'object' || options === null) throw kvmtestError('INVALID_OPTION', `Expected boot options to be an object, got ${describe(options)}`);
  if (typeof options.image !== 'string' || options.image.length === 0) throw kvmtestError('INVALID_OPTION', `Expected the "image" option to be an image path or name, got ${describe(options.image)}`);
  const accel = options.accel ?? 'auto';
  if (!['auto', 'kvm', 'tcg'].includes(accel)) throw kvmtestError('INVALID_OPTION', `Expected the "accel" option to be 'auto', 'kvm' or 'tcg', got ${describe(accel)}`);
  const arch = options.arch ?? defaultArch();
  if (!isMachineArch(arch)) throw kvmtestError('INVALID_OPTION', `Expected the "arch" option to be ${MACHINE_ARCHES.map((a) => `'${a}'`).join(', ')}, got ${describe(arch)}`);
  const firmware = options.firmware ?? ARCH_MACHINES[arch].firmware;
  if (!FIRMWARES[arch].includes(firmware))
    throw kvmtestError('INVALID_OPTION', `Expected the "firmware" option of ${arch} guests to be ${FIRMWARES[arch].map((f) => `'${f}'`).join(' or ')}, got ${describe(firmware)}`);
  let uefi: ResolvedBootOptions['uefi'];
  if (firmware === 'uefi' && (options.uefiCode || options.uefiVars || arch === 'x86_64')) {
    if (!options.uefiCode || !options.uefiVars)
      throw kvmtestError('INVALID_OPTION', 'firmware: "uefi" needs the "uefiCode" and "uefiVars" options (OVMF_CODE.fd and a copy of OVMF_VARS.fd, from the ovmf package)');
    uefi = { code: options.uefiCode, vars: options.uefiVars };
  }
  if (options.boot !== undefined && options.boot !== 'firmware' && options.boot !== 'kernel')
    throw kvmtestError('INVALID_OPTION', `Expected the "boot" option to be 'firmware' or 'kernel', got ${describe(options.boot)}`);
  if ((options.initrd || options.append) && !options.kernel && options.boot !== 'kernel')
    throw kvmtestError('INVALID_OPTION', 'the "initrd" and "append" options need "kernel" (or boot: "kernel" with a named image)');
  const bootMode = options.kernel || options.boot === 'kernel' ? 'kernel' : 'firmware';
  if (options.hostname !== undefined) checkHostname(options.hostname);
  if (options.cpu !== undefined && (typeof options.cpu !== 'string' || !CPU_MODEL.test(options.cpu)))
    throw kvmtestError('INVALID_OPTION', `Expected the "cpu" option to be a QEMU CPU model name such as 'Nehalem' (qemu-system-x86_64 -cpu help lists them), got ${describe(options.cpu)}`);
  let network: ResolvedBootOptions['network'] = false;
  if (options.network === true) network = { forwards: [] };
  else if (typeof options.network === 'object' && options.network !== null) {
    const forwards = options.network.forwards ?? [];
    for (const f of forwards) {
      for (const port of [f.guest, f.host ?? 1]) {
        if (!Number.isInteger(port) || port < 1 || port > 65535) throw kvmtestError('INVALID_OPTION', `Expected network forward ports from 1 to 65535, got ${describe(f)}`);
      }
    }
    const outbound = (options.network as { outbound?: unknown }).outbound;
    if (outbound !== undefined && typeof outbound !== 'boolean') throw kvmtestError('INVALID_OPTION', `Expected the "network.outbound" option to be a boolean, got ${describe(outbound)}`);
    const unknown = Object.keys(options.network).filter((k) => k !== 'forwards' && k !== 'outbound');
    // a misspelt isolation option must not leave the guest silently connected
    if (unknown.length > 0) throw kvmtestError('INVALID_OPTION', `Expected the "network" option to have only "forwards" and "outbound", got ${describe(unknown.join(', '))}`);
    network = { forwards, ...(outbound === false ? { outbound: false as const } : {}) };
  } else if (options.network !== undefined && options.network !== false) {
    throw kvmtestError('INVALID_OPTION', `Expected the "network" option to be a boolean or { forwards, outbound }, got ${describe(options.network)}`);
  }
  for (const flag of ['progress', 'snapshot'] as const) {
    if (options[flag] !== undefined && typeof options[flag] !== 'boolean') throw kvmtestError('INVALID_OPTION', `Expected the "${flag}" option to be a boolean, got ${describe(options[flag])}`);
  }
  if (options.qemuArgs !== undefined && (!Array.isArray(options.qemuArgs) || options.qemuArgs.some((a) => typeof a !== 'string'))) {
    throw kvmtestError('INVALID_OPTION', `Expected the "qemuArgs" option to be an array of strings, got ${describe(options.qemuArgs)}`);
  }
  if (options.signal !== undefined && !isAbortSignal(options.signal)) throw kvmtestError('INVALID_OPTION', `Expected the "signal" option to be an AbortSignal, got ${describe(options.signal)}`);
  const setup = options.setup === undefined ? undefined : resolveSetup(options.setup);
  return {
    image: options.image,
    arch,
    memoryMiB: parseMemoryMiB(options.memory ?? '1G'),
    cpus: parseCpus(options.cpus ?? 2),
    ...(options.cpu ? { cpu: options.cpu } : {}),
    accel,
    bootMode,
    ...(options.kernel ? { kernel: { kernel: options.kernel, ...(options.initrd ? { initrd: options.initrd } : {}), ...(options.append ? { append: options.append } : {}) } } : {}),
    firmware,
    ...(uefi ? { uefi } : {}),
    ...(options.hostname ? { hostname: options.hostname } : {}),
    network,
    ...(options.bootTimeout !== undefined ? { bootTimeoutMs: parseDuration(options.bootTimeout, 'bootTimeout') } : {}),
    cloudConfig: normaliseCloudConfig(options.cloudConfig),
    ...(options.qemuArgs ? { qemuArgs: [...options.qemuArgs] } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    progress: options.progress ?? false,
    snapshot: options.snapshot ?? Boolean(setup),
    ...(setup ? { setup } : {}),
  };
}

/** A host name the guest can take: letters, digits, hyphens (RFC 1123 label); else INVALID_OPTION. */
export function checkHostname(hostname: unknown): void {
  if (typeof hostname !== 'string' || !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(hostname)) {
    throw kvmtestError('INVALID_OPTION', `Expected the "hostname" option to be a valid host name (letters, digits, hyphens), got ${describe(hostname)}`);
  }
}

/** Checks a setup step; relative push sources resolve against `base` (default the working directory). */
export function resolveSetup(setup: SetupOptions, base = process.cwd()): SetupStep {
  if (typeof setup !== 'object' || setup === null) throw kvmtestError('INVALID_OPTION', `Expected the "setup" option to be { push?, run, env?, cwd?, timeout? }, got ${describe(setup)}`);
  const unknown = Object.keys(setup).filter((k) => !['push', 'run', 'env', 'cwd', 'timeout'].includes(k));
  if (unknown.length > 0) throw kvmtestError('INVALID_OPTION', `Expected the "setup" option to have only push, run, env, cwd and timeout, got ${describe(unknown.join(', '))}`);
  const { run } = setup;
  const argv = Array.isArray(run) && run.length > 0 && run.every((a) => typeof a === 'string');
  if (!argv && (typeof run !== 'string' || run.trim() === ''))
    throw kvmtestError('INVALID_OPTION', `Expected the "setup.run" option to be a command (an argv array or a shell string), got ${describe(run)}`);
  for (const [name, value] of [
    ['push', setup.push],
    ['env', setup.env],
  ] as const) {
    if (value !== undefined && (typeof value !== 'object' || value === null || Array.isArray(value) || Object.values(value).some((v) => typeof v !== 'string')))
      throw kvmtestError('INVALID_OPTION', `Expected the "setup.${name}" option to map strings to strings, got ${describe(value)}`);
  }
  if (setup.cwd !== undefined && (typeof setup.cwd !== 'string' || !setup.cwd.startsWith('/')))
    throw kvmtestError('INVALID_OPTION', `Expected the "setup.cwd" option to be an absolute guest path, got ${describe(setup.cwd)}`);
  return {
    push: Object.entries(setup.push ?? {}).map(([source, dest]) => ({ source: resolve(base, source), dest })),
    run: Array.isArray(run) ? [...run] : run,
    env: { ...(setup.env ?? {}) },
    ...(setup.cwd ? { cwd: setup.cwd } : {}),
    timeoutMs: parseDuration(setup.timeout ?? SETUP_TIMEOUT, 'setup.timeout'),
  };
}

/** Duck-typed, so a signal from another realm or a polyfill is accepted as before. */
function isAbortSignal(value: unknown): value is AbortSignal {
  return typeof value === 'object' && value !== null && typeof (value as AbortSignal).addEventListener === 'function' && typeof (value as AbortSignal).aborted === 'boolean';
}
