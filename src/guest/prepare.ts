import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { kvmtestError } from '../errors.js';
import { chooseAccel, probeKvmOnce } from '../host/accel.js';
import { packageRoot } from '../host/paths.js';
import { probeSandbox } from '../host/sandbox.js';
import { findTools } from '../host/tools.js';
import { warnOnce } from '../host/warn.js';
import { inspectBase } from '../image/base.js';
import type { BuiltImage } from '../image/build.js';
import { type CatalogEntry, catalogSource, hostArch } from '../image/catalog.js';
import { type ImageSource, resolveImage } from '../image/resolve.js';
import type { MachinePlan } from '../machine/plan.js';
import type { BootMethod } from '../qemu/argv.js';
import { createProgress, formatTransfer, silentProgress } from '../util/progress.js';
import { type BootOptions, type ResolvedBootOptions, resolveBootOptions } from './options.js';

/** A machine plan from checked options, plus where its base image came from (a path, a built image, a catalog or URL download). */
export interface Prepared extends MachinePlan {
  opts: ResolvedBootOptions;
  source: ImageSource;
  built: BuiltImage | undefined;
}

/** Settles everything a boot needs before a QEMU starts: tools, accelerator, base image, boot method. */
export async function prepare(options: BootOptions): Promise<Prepared> {
  const opts = resolveBootOptions(options);
  const tools = await findTools();
  const choice = chooseAccel(opts.accel, await probeKvmOnce());
  if (choice.warning) warnOnce(choice.warning);
  const progress = opts.progress ? createProgress(`boot ${opts.image}`) : silentProgress;
  const source = await resolveImage(opts.image, {
    onLine: (line) => progress.update(line),
    onProgress: (p) => progress.update(`downloading ${formatTransfer(p.received, p.total)}`),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const built = source.kind === 'built' ? source.built : undefined;
  if (source.kind === 'catalog') checkFirmware(source.entry, opts.firmware);
  const base = await inspectBase(tools.qemuImg, source);
  return {
    opts,
    tools,
    choice,
    source,
    built,
    base,
    bootMethod: chooseBootMethod(opts, built),
    agentSource: await readFile(join(packageRoot(), 'guest', 'agent.py'), 'utf8'),
    progress,
    sandbox: (await probeSandbox(tools.qemu)).supported,
  };
}

/** A catalog image that boots with one firmware only fails at once with the other, saying which. */
function checkFirmware(entry: CatalogEntry, firmware: 'bios' | 'uefi'): void {
  const needs = catalogSource(entry, hostArch()).firmware;
  if (needs === 'uefi' && firmware !== 'uefi') {
    throw kvmtestError(
      'INVALID_OPTION',
      `${entry.name} boots only with UEFI firmware: pass firmware: 'uefi' with uefiCode and uefiVars (OVMF_CODE.fd and a copy of OVMF_VARS.fd from the ovmf package)`,
    );
  }
  if (needs === 'bios' && firmware === 'uefi') throw kvmtestError('INVALID_OPTION', `${entry.name} boots only with BIOS firmware on this architecture: leave firmware at 'bios'`);
}

function chooseBootMethod(opts: ResolvedBootOptions, built: BuiltImage | undefined): BootMethod {
  if (opts.bootMode === 'kernel') {
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
  if (opts.firmware === 'uefi') return { kind: 'firmware', firmware: 'uefi', code: opts.uefi!.code, vars: opts.uefi!.vars };
  return { kind: 'firmware', firmware: 'bios' };
}
