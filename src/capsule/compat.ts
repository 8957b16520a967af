// Whether this host's QEMU can restore a capsule: judged before QEMU starts, so the answer names the cause.

import { execa } from 'execa';
import { compareVersions } from '../qemu/arch.js';
import type { CapsuleManifest } from './manifest.js';

/** What this host offers: its QEMU's version, machine types and CPU models, and the accelerator chosen. */
export interface HostQemu {
  version: string;
  machineTypes: string[];
  cpuModels: string[];
  accel: string;
}

/**
 * Why this host cannot restore the capsule, or undefined when it can. QEMU loads a stream from its
 * own version or an older one, on the same versioned machine type and CPU model. Pure.
 */
export function incompatibility(manifest: Pick<CapsuleManifest, 'qemu' | 'machine'>, here: HostQemu): string | undefined {
  const saved = manifest.qemu.version;
  if (!/^\d+\.\d+/.test(here.version)) return `this host's QEMU did not say its version (${here.version}), so whether it can load QEMU ${saved}'s state is unknown`;
  if (compareVersions(here.version, saved) < 0) return `it was saved by QEMU ${saved} and this host has QEMU ${here.version}, which cannot load a newer QEMU's state: install QEMU ${saved} or newer`;
  const { type, cpu, accel } = manifest.machine;
  if (!here.machineTypes.includes(type)) return `its machine type ${type} is not one this QEMU ${here.version} has (qemu-system -machine help lists them)`;
  if (cpu === 'host') {
    if (here.accel !== 'kvm') return `it ran on the host's own CPU under KVM (no named CPU model was pinned), and KVM is not usable here: only a like host with KVM can restore it`;
  } else if (cpu === 'max') {
    // 'max' is whatever this QEMU's TCG emulates: the same only on the same version
    if (here.version !== saved || accel !== here.accel)
      return `it ran on CPU model 'max' (${accel}, QEMU ${saved}), which differs from this host's (${here.accel}, QEMU ${here.version}): pin a named CPU model (capsules in a matrix do) to move capsules between hosts`;
  } else if (!here.cpuModels.includes(cpu)) return `its CPU model ${cpu} is not one this QEMU has`;
  return undefined;
}

/** Machine type names from `qemu-system-* -machine help` (first word of each line after the header). Pure. */
export function parseMachineTypes(text: string): string[] {
  return text
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/)[0] ?? '')
    .filter((name) => /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name));
}

/** CPU model names from `qemu-system-* -cpu help` (x86: "x86 Nehalem  (alias…)"; arm: one name per line). Pure. */
export function parseCpuModels(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    // x86 lists its CPUID flags after the models: not models
    if (line.startsWith('Recognized')) break;
    if (line.trim().endsWith(':')) continue;
    const words = line.trim().split(/\s+/);
    const name = words[0] === 'x86' || words[0] === 's390x' ? words[1] : words[0];
    if (name && /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) out.push(name);
  }
  return out;
}

/** Asks this host's QEMU binary what it offers. */
export async function hostQemu(qemu: string, version: string, accel: string): Promise<HostQemu> {
  const [machines, cpus] = await Promise.all([execa(qemu, ['-machine', 'help'], { reject: false }), execa(qemu, ['-cpu', 'help'], { reject: false })]);
  return { version, machineTypes: parseMachineTypes(machines.stdout), cpuModels: parseCpuModels(cpus.stdout), accel };
}
