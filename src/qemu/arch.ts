import { kvmtestError } from '../errors.js';
import { hostMachineArch } from '../host/accel.js';

/** Guest architectures kvmtest boots (QEMU's names, as the image catalog and `uname -m` use them). */
export type MachineArch = 'x86_64' | 'aarch64' | 'riscv64';
export const MACHINE_ARCHES: readonly MachineArch[] = ['x86_64', 'aarch64', 'riscv64'];

/**
 * What "firmware boot" means on a machine: SeaBIOS (x86 q35's default, or OVMF when the user gives
 * it), UEFI (aarch64 virt: AAVMF, found on the host), or OpenSBI + U-Boot (riscv64 virt: U-Boot's
 * distro boot reads the disk's extlinux.conf).
 */
export type ArchFirmware = 'bios' | 'uefi' | 'uboot';

export interface ArchMachine {
  /** The QEMU binary that emulates it. */
  binary: string;
  /** The Debian package that has the binary (install hints for other families: host/tools.ts). */
  debianPackage: string;
  /** The -machine value before kvmtest's own properties (graphics=off). */
  machine: string;
  /** The CPU model per accelerator: the host's own under KVM, every feature TCG emulates otherwise. */
  cpu: { kvm: string; tcg: string };
  /**
   * A named model that TCG and every KVM host of this architecture can give, with `enforce`: a
   * machine saved on it (a capsule) restores on another host. None where KVM takes only `host`.
   */
  portableCpu?: string;
  /** The kernel's name for the serial console QEMU's -serial is wired to. */
  console: string;
  /** Debian's name for the architecture (debootstrap --arch, package suffixes). */
  debianArch: string;
  /** What firmware boot uses by default. */
  firmware: ArchFirmware;
  /** The machine has ACPI and QEMU's vmgenid device (the guest reseeds its RNG on restore). */
  vmgenid: boolean;
  /** Why this machine, and what the arch needs elsewhere. */
  note: string;
}

/** Which QEMU machine each architecture boots on. Pure data. */
export const ARCH_MACHINES: Readonly<Record<MachineArch, ArchMachine>> = {
  x86_64: {
    binary: 'qemu-system-x86_64',
    debianPackage: 'qemu-system-x86',
    machine: 'q35',
    cpu: { kvm: 'host', tcg: 'max' },
    // x86-64-v2 (SSE4.2, POPCNT, CX16): every KVM host since 2008, and TCG 7.2 gives all of it with enforce
    portableCpu: 'Nehalem',
    console: 'ttyS0',
    debianArch: 'amd64',
    firmware: 'bios',
    vmgenid: true,
    note: 'q35: PCIe, ACPI (vmgenid), BIOS or UEFI firmware; serial console on ttyS0',
  },
  aarch64: {
    binary: 'qemu-system-aarch64',
    debianPackage: 'qemu-system-arm',
    // gic-version=max: the host's GIC under KVM, the newest TCG emulates otherwise (virt's default GICv2 caps vCPUs at 8)
    machine: 'virt,gic-version=max',
    cpu: { kvm: 'host', tcg: 'max' },
    // no portableCpu: KVM on arm64 runs the host's CPU only, so a capsule restores on a like host
    console: 'ttyAMA0',
    debianArch: 'arm64',
    firmware: 'uefi',
    // QEMU 7.2's virt has no vmgenid device
    vmgenid: false,
    note: 'virt: PCIe, UEFI (AAVMF, from qemu-efi-aarch64) or direct kernel boot, console on ttyAMA0 (PL011); KVM only on an aarch64 host',
  },
  riscv64: {
    binary: 'qemu-system-riscv64',
    debianPackage: 'qemu-system-misc',
    machine: 'virt',
    // rv64: QEMU's generic RV64GC with the extensions Debian's riscv64 baseline needs
    cpu: { kvm: 'host', tcg: 'rv64' },
    console: 'ttyS0',
    debianArch: 'riscv64',
    firmware: 'uboot',
    vmgenid: false,
    note: "virt: PCIe, OpenSBI (QEMU's own -bios default) then U-Boot (u-boot-qemu) reading the disk's extlinux.conf, or direct kernel boot; console on ttyS0 (16550)",
  },
};

/** -1, 0 or 1 comparing dotted versions by major, minor and micro. Pure. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

/**
 * Why a saved machine of this architecture cannot be restored by this QEMU, if it cannot: riscv64
 * on QEMU 7.2 saves without error but the loaded guest never runs again (measured here: not a line
 * on its console in 40 s after the load, the same with kvmtest's devices and with a bare virt
 * machine running Linux). Snapshots, checkpoints and capsules are refused at once for it (coded,
 * with this reason) instead of a restore that times out. Newer QEMUs are tried (a restore that
 * fails there still falls back to a cold boot once). Pure.
 */
export function restoreBlocker(arch: string, qemuVersion: string): string | undefined {
  if (arch === 'riscv64' && compareVersions(qemuVersion, '8.0') < 0) {
    return `QEMU ${qemuVersion} cannot restore a saved riscv64 machine (the loaded guest never runs again): riscv64 guests boot cold here`;
  }
  return undefined;
}

/** The guest architecture a guest gets when none is named: the host's. */
export function defaultArch(): string {
  return hostMachineArch();
}

export function isMachineArch(arch: unknown): arch is MachineArch {
  return typeof arch === 'string' && Object.hasOwn(ARCH_MACHINES, arch);
}

/** The machine for a guest architecture; any other is refused with UNSUPPORTED_ARCH, never given q35. Pure. */
export function machineFor(arch: string): ArchMachine {
  if (!isMachineArch(arch)) {
    throw kvmtestError('UNSUPPORTED_ARCH', `kvmtest boots ${MACHINE_ARCHES.join(', ')} guests, and this guest is ${JSON.stringify(arch)}: pick one of those (arch option)`);
  }
  return ARCH_MACHINES[arch];
}
