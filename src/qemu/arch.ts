import { kvmtestError } from '../errors.js';

/** Guest architectures kvmtest can build a QEMU machine for (QEMU's names, as the image catalog uses them). */
export type MachineArch = 'x86_64' | 'aarch64';

export interface ArchMachine {
  /** The -machine value before kvmtest's own properties (graphics=off). */
  machine: string;
  /** The CPU model per accelerator: the host's own under KVM, every feature TCG emulates otherwise. */
  cpu: { kvm: string; tcg: string };
  /**
   * A named model that TCG and every KVM host of this architecture can give, with `enforce`: a
   * machine saved on it (a capsule) restores on another host. None where KVM takes only `host`.
   */
  portableCpu?: string;
  /** Why this machine, and what the arch needs elsewhere. */
  note: string;
}

/** Which QEMU machine each architecture boots on. Pure data. */
export const ARCH_MACHINES: Readonly<Record<MachineArch, ArchMachine>> = {
  x86_64: {
    machine: 'q35',
    cpu: { kvm: 'host', tcg: 'max' },
    // x86-64-v2 (SSE4.2, POPCNT, CX16): every KVM host since 2008, and TCG 7.2 gives all of it with enforce
    portableCpu: 'Nehalem',
    note: 'q35: PCIe, ACPI (vmgenid), BIOS or UEFI firmware; serial console on ttyS0',
  },
  aarch64: {
    // gic-version=max: the host's GIC under KVM, the newest TCG emulates otherwise (virt's default GICv2 caps vCPUs at 8)
    machine: 'virt,gic-version=max',
    cpu: { kvm: 'host', tcg: 'max' },
    // no portableCpu: KVM on arm64 runs the host's CPU only, so a capsule restores on a like host
    note: 'virt: PCIe, UEFI only (no BIOS: the catalog gives aarch64 images uefi), console on ttyAMA0 (PL011); KVM only on an aarch64 host',
  },
};

/** Node's process.arch as QEMU names it (x64 → x86_64, arm64 → aarch64); other names pass through. Pure. */
export function qemuArch(nodeArch: string = process.arch): string {
  return nodeArch === 'x64' ? 'x86_64' : nodeArch === 'arm64' ? 'aarch64' : nodeArch;
}

/** The machine for a guest architecture; any other is refused with UNSUPPORTED_ARCH, never given q35. Pure. */
export function machineFor(arch: string): ArchMachine {
  if (!Object.hasOwn(ARCH_MACHINES, arch)) {
    throw kvmtestError('UNSUPPORTED_ARCH', `kvmtest boots x86_64 (q35) and aarch64 (virt) guests only, and this guest is ${JSON.stringify(arch)}: run on an x86_64 or aarch64 host`);
  }
  return ARCH_MACHINES[arch as MachineArch];
}
