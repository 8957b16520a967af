import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { kvmtestError } from '../errors.js';
import { chooseAccel, probeKvmOnce } from '../host/accel.js';
import { findAarch64Uefi, findRiscv64Uboot } from '../host/firmware.js';
import { packageRoot } from '../host/paths.js';
import { probeSandbox } from '../host/sandbox.js';
import { findTools } from '../host/tools.js';
import { warnOnce } from '../host/warn.js';
import { type BaseTrust, inspectBase } from '../image/base.js';
import type { BuiltImage } from '../image/build.js';
import { type CatalogEntry, catalogSource } from '../image/catalog.js';
import { type ImageSource, resolveImage } from '../image/resolve.js';
import type { MachinePlan } from '../machine/plan.js';
import { defaultArch, machineFor } from '../qemu/arch.js';
import type { BootMethod } from '../qemu/argv.js';
import { createProgress, formatTransfer, silentProgress } from '../util/progress.js';
import { type BootOptions, type ResolvedBootOptions, resolveBootOptions } from './options.js';

/** A machine plan from checked options, plus where its base image came from (a path, a built image, a catalog or URL download). */
export interface Prepared extends MachinePlan {
  opts: ResolvedBootOptions;
  source: ImageSource;
  built: BuiltImage | undefined;
}

/** Settles everything a boot needs before a QEMU starts: tools, accelerator, base image (`trust`: how far a local one is trusted), boot method. */
export async function prepare(options: BootOptions, trust: BaseTrust = {}): Promise<Prepared> {
  const opts = resolveBootOptions(options);
  const tools = await findTools(machineFor(opts.arch));
  const choice = chooseAccel(opts.accel, await probeKvmOnce(), opts.arch);
  if (choice.warning) warnOnce(choice.warning);
  const progress = opts.progress ? createProgress(`boot ${opts.image}${opts.arch === defaultArch() ? '' : ` (${opts.arch})`}`) : silentProgress;
  // missing firmware is said before any download or build
  const firmware = await findFirmware(opts);
  const source = await resolveImage(opts.image, {
    arch: opts.arch,
    onLine: (line) => progress.update(line),
    onProgress: (p) => progress.update(`downloading ${formatTransfer(p.received, p.total)}`),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const built = source.kind === 'built' ? source.built : undefined;
  if (source.kind === 'catalog') checkFirmware(source.entry, opts.firmware, opts.arch);
  if (source.kind === 'built' && source.built.arch !== opts.arch) throw kvmtestError('IMAGE_INVALID', `${opts.image} was built for ${source.built.arch}, not ${opts.arch}`);
  const base = await inspectBase(tools.qemuImg, source, trust);
  return {
    opts,
    tools,
    choice,
    source,
    built,
    base,
    bootMethod: chooseBootMethod(opts, built, firmware),
    agentSource: await readFile(join(packageRoot(), 'guest', 'agent.py'), 'utf8'),
    progress,
    sandbox: (await probeSandbox(tools.qemu)).supported,
  };
}

/** A catalog image that boots with one firmware only fails at once with the other, saying which. */
function checkFirmware(entry: CatalogEntry, firmware: string, arch: string): void {
  const needs = catalogSource(entry, arch).firmware;
  if (needs === 'uefi' && firmware !== 'uefi') {
    throw kvmtestError(
      'INVALID_OPTION',
      `${entry.name} boots only with UEFI firmware: pass firmware: 'uefi' with uefiCode and uefiVars (OVMF_CODE.fd and a copy of OVMF_VARS.fd from the ovmf package)`,
    );
  }
  if (needs === 'bios' && firmware === 'uefi') throw kvmtestError('INVALID_OPTION', `${entry.name} boots only with BIOS firmware on this architecture: leave firmware at 'bios'`);
}

type Firmware = Extract<BootMethod, { kind: 'firmware' }>;

/**
 * The architecture's firmware for a firmware boot: SeaBIOS, UEFI (the user's files, else the host's
 * AAVMF on aarch64), OpenSBI + U-Boot; FIRMWARE_NOT_FOUND saying what to install. None for a kernel boot.
 */
async function findFirmware(opts: ResolvedBootOptions): Promise<Firmware | undefined> {
  if (opts.bootMode === 'kernel') return undefined;
  if (opts.firmware === 'uefi') {
    const files = opts.uefi ?? (await findAarch64Uefi());
    return { kind: 'firmware', firmware: 'uefi', code: files.code, vars: files.vars };
  }
  if (opts.firmware === 'uboot') return { kind: 'firmware', firmware: 'uboot', loader: await findRiscv64Uboot() };
  return { kind: 'firmware', firmware: 'bios' };
}

function chooseBootMethod(opts: ResolvedBootOptions, built: BuiltImage | undefined, firmware: Firmware | undefined): BootMethod {
  if (firmware) return firmware;
  if (opts.kernel)
    return {
      kind: 'kernel',
      kernel: resolve(opts.kernel.kernel),
      ...(opts.kernel.initrd ? { initrd: resolve(opts.kernel.initrd) } : {}),
      ...(opts.kernel.append ? { append: opts.kernel.append } : {}),
    };
  if (!built) throw kvmtestError('INVALID_OPTION', `boot: 'kernel' without a "kernel" path needs a named image (such as debian-12) whose kernel kvmtest knows; ${opts.image} is a path`);
  return { kind: 'kernel', kernel: built.kernel, initrd: built.initrd, append: built.append };
}
