import { constants } from 'node:fs';
import { chmod, copyFile, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { kvmtestError } from '../errors.js';
import { chooseAccel, probeKvmOnce, type AccelChoice } from '../host/accel.js';
import { probeSandbox } from '../host/sandbox.js';
import { findTools, type HostTools } from '../host/tools.js';
import type { BuiltImage } from '../image/build.js';
import { inspectBase } from '../image/base.js';
import type { BackingLink, DiskInfo } from '../image/disk.js';
import { catalogSource, hostArch, type CatalogEntry } from '../image/catalog.js';
import { resolveImage, type ImageSource } from '../image/resolve.js';
import type { BootMethod, MachineSpec } from '../qemu/argv.js';
import { normaliseCloudConfig, type CloudConfig } from '../seed/cloud-config.js';
import { packageRoot } from '../host/paths.js';
import { sanitizeLine } from '../util/sanitize.js';
import { createProgress, formatTransfer, silentProgress, type Progress } from '../util/progress.js';
import { resolveBootOptions, type BootOptions, type ResolvedBootOptions } from './options.js';

/** Everything boot() settles before it starts a QEMU: checked options, tools, accelerator, base image. */
export interface Prepared {
  options: BootOptions;
  opts: ResolvedBootOptions;
  tools: HostTools;
  choice: AccelChoice;
  /** Where the base image came from: a path, a built image, a catalog or URL download. */
  source: ImageSource;
  built: BuiltImage | undefined;
  base: DiskInfo;
  bootMethod: BootMethod;
  agentSource: string;
  userConfig: CloudConfig;
  progress: Progress;
  /** QEMU runs under its seccomp sandbox (false where this build or kernel cannot: kvmtest doctor says). */
  sandbox: boolean;
}

const warned = new Set<string>();

/** Prints a one-line warning once per process (sanitized: it may quote QEMU or the guest). */
export function warnOnce(message: string): void {
  if (warned.has(message)) return;
  warned.add(message);
  process.stderr.write(`${sanitizeLine(message, 2000)}\n`);
}

export async function prepare(options: BootOptions): Promise<Prepared> {
  const opts = resolveBootOptions(options);
  const tools = await findTools();
  const choice = chooseAccel(opts.accel, await probeKvmOnce());
  if (choice.warning) warnOnce(choice.warning);
  const progress = options.progress ? createProgress(`boot ${opts.image}`) : silentProgress;
  const source = await resolveImage(opts.image, {
    onLine: (line) => progress.update(line),
    onProgress: (p) => progress.update(`downloading ${formatTransfer(p.received, p.total)}`),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const built = source.kind === 'built' ? source.built : undefined;
  if (source.kind === 'catalog') checkFirmware(source.entry, opts.firmware);
  const base = await inspectBase(tools.qemuImg, source);
  return {
    options,
    opts,
    tools,
    choice,
    source,
    built,
    base,
    bootMethod: chooseBootMethod(opts, built),
    agentSource: await readFile(join(packageRoot(), 'guest', 'agent.py'), 'utf8'),
    userConfig: normaliseCloudConfig(options.cloudConfig),
    progress,
    sandbox: (await probeSandbox(tools.qemu)).supported,
  };
}

/** A catalog image that boots with one firmware only fails at once with the other, saying which. */
function checkFirmware(entry: CatalogEntry, firmware: 'bios' | 'uefi'): void {
  const needs = catalogSource(entry, hostArch()).firmware;
  if (needs === 'uefi' && firmware !== 'uefi') {
    throw kvmtestError('INVALID_OPTION', `${entry.name} boots only with UEFI firmware: pass firmware: 'uefi' with uefiCode and uefiVars (OVMF_CODE.fd and a copy of OVMF_VARS.fd from the ovmf package)`);
  }
  if (needs === 'bios' && firmware === 'uefi') throw kvmtestError('INVALID_OPTION', `${entry.name} boots only with BIOS firmware on this architecture: leave firmware at 'bios'`);
}

function chooseBootMethod(opts: ResolvedBootOptions, built: BuiltImage | undefined): BootMethod {
  if (opts.bootMode === 'kernel') {
    if (opts.kernel) return { kind: 'kernel', kernel: resolve(opts.kernel.kernel), ...(opts.kernel.initrd ? { initrd: resolve(opts.kernel.initrd) } : {}), ...(opts.kernel.append ? { append: opts.kernel.append } : {}) };
    if (!built) throw kvmtestError('INVALID_OPTION', `boot: 'kernel' without a "kernel" path needs a named image (such as debian-12) whose kernel kvmtest knows; ${opts.image} is a path`);
    return { kind: 'kernel', kernel: built.kernel, initrd: built.initrd, append: built.append };
  }
  if (opts.firmware === 'uefi') return { kind: 'firmware', firmware: 'uefi', code: opts.uefi!.code, vars: opts.uefi!.vars };
  return { kind: 'firmware', firmware: 'bios' };
}

/** Where a guest's own copy of the UEFI vars lives: firmware writes it, and guests must not share it. */
export function uefiVarsPath(dir: string): string {
  return join(dir, 'uefi-vars.fd');
}

/** Copies the user's UEFI vars into the guest's private dir (0600), when it boots with UEFI. */
export async function copyUefiVars(prep: Prepared, dir: string): Promise<void> {
  const boot = prep.bootMethod;
  if (boot.kind !== 'firmware' || boot.firmware !== 'uefi') return;
  const target = uefiVarsPath(dir);
  await copyFile(boot.vars, target, constants.COPYFILE_EXCL);
  await chmod(target, 0o600);
}

/** The machine spec for one guest: its own disk (on the backing chain given, nearest first), seed, sockets and UEFI vars in dir. */
export function machineSpec(prep: Prepared, name: string, dir: string, disk: string, backing: BackingLink[], seed: string, network: MachineSpec['network']): MachineSpec {
  const boot = prep.bootMethod;
  return {
    name,
    accel: prep.choice.accel,
    cpus: prep.opts.cpus,
    memoryMiB: prep.opts.memoryMiB,
    disk,
    backing,
    seed,
    boot: boot.kind === 'firmware' && boot.firmware === 'uefi' ? { ...boot, vars: uefiVarsPath(dir) } : boot,
    qmpSocket: join(dir, 'qmp.sock'),
    agentSocket: join(dir, 'agent.sock'),
    network,
    ...(prep.sandbox ? { sandbox: true } : {}),
    ...(prep.options.qemuArgs ? { extraArgs: prep.options.qemuArgs } : {}),
  };
}

/** Fills in host ports left unset with free ones on 127.0.0.1. */
export async function withFreePorts(network: ResolvedBootOptions['network']): Promise<MachineSpec['network']> {
  if (network === false) return false;
  const forwards = [];
  for (const f of network.forwards) forwards.push({ guest: f.guest, host: f.host ?? (await freePort()) });
  return { forwards, ...(network.outbound === false ? { outbound: false } : {}) };
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === 'object' && address ? address.port : 0));
    });
  });
}
