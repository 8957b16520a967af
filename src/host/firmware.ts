import { access, constants } from 'node:fs/promises';
import { kvmtestError } from '../errors.js';
import { hostFamily } from './tools.js';

/** UEFI for an aarch64 guest: the read-only code and the template every machine copies its vars from. */
export interface UefiFiles {
  code: string;
  vars: string;
}

/** Where distributions put AAVMF (EDK II for QEMU's arm virt machine), padded to the 64 MiB pflash size. */
export const AARCH64_UEFI: readonly UefiFiles[] = [
  { code: '/usr/share/AAVMF/AAVMF_CODE.fd', vars: '/usr/share/AAVMF/AAVMF_VARS.fd' }, // Debian, Ubuntu: qemu-efi-aarch64
  { code: '/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw', vars: '/usr/share/edk2/aarch64/vars-template-pflash.raw' }, // Fedora: edk2-aarch64
  { code: '/usr/share/edk2/aarch64/QEMU_CODE.fd', vars: '/usr/share/edk2/aarch64/QEMU_VARS.fd' }, // Arch Linux: edk2-aarch64
];

/** U-Boot built for QEMU's riscv64 virt machine in supervisor mode, which QEMU's own OpenSBI (-bios default) starts. */
export const RISCV64_UBOOT: readonly string[] = [
  '/usr/lib/u-boot/qemu-riscv64_smode/uboot.elf', // Debian, Ubuntu: u-boot-qemu
  '/usr/share/uboot/qemu-riscv64_smode/u-boot.bin', // Fedora: uboot-images-riscv64
];

const INSTALL = {
  uefi: { debian: 'sudo apt-get install -y qemu-efi-aarch64', fedora: 'sudo dnf install -y edk2-aarch64', arch: 'sudo pacman -S edk2-aarch64', other: 'install EDK II for aarch64 (AAVMF)' },
  uboot: {
    debian: 'sudo apt-get install -y u-boot-qemu',
    fedora: 'sudo dnf install -y uboot-images-riscv64',
    arch: 'install U-Boot for qemu-riscv64_smode',
    other: 'install U-Boot for qemu-riscv64_smode',
  },
} as const;

/** How to install a firmware on this host's family. */
export function firmwareInstallHint(kind: keyof typeof INSTALL, family: string = hostFamily()): string {
  const hints: Record<string, string> = INSTALL[kind];
  return hints[family] ?? hints.other!;
}

/** The first UEFI pair present on this host. */
export async function locateAarch64Uefi(candidates: readonly UefiFiles[] = AARCH64_UEFI): Promise<UefiFiles | undefined> {
  for (const files of candidates) if ((await readable(files.code)) && (await readable(files.vars))) return files;
  return undefined;
}

/** The first riscv64 U-Boot present on this host. */
export async function locateRiscv64Uboot(candidates: readonly string[] = RISCV64_UBOOT): Promise<string | undefined> {
  for (const path of candidates) if (await readable(path)) return path;
  return undefined;
}

/** The first UEFI pair present on this host, or FIRMWARE_NOT_FOUND saying what to install. */
export async function findAarch64Uefi(candidates: readonly UefiFiles[] = AARCH64_UEFI): Promise<UefiFiles> {
  const found = await locateAarch64Uefi(candidates);
  if (found) return found;
  throw kvmtestError(
    'FIRMWARE_NOT_FOUND',
    `an aarch64 guest boots with UEFI, and no AAVMF was found (looked for ${candidates.map((c) => c.code).join(', ')}). Install it: ${firmwareInstallHint('uefi')}; or pass uefiCode and uefiVars, or boot: 'kernel'`,
  );
}

/** The first riscv64 U-Boot present on this host, or FIRMWARE_NOT_FOUND saying what to install. */
export async function findRiscv64Uboot(candidates: readonly string[] = RISCV64_UBOOT): Promise<string> {
  const found = await locateRiscv64Uboot(candidates);
  if (found) return found;
  throw kvmtestError(
    'FIRMWARE_NOT_FOUND',
    `a riscv64 guest boots OpenSBI then U-Boot, and no U-Boot for qemu-riscv64_smode was found (looked for ${candidates.join(', ')}). Install it: ${firmwareInstallHint('uboot')}; or boot: 'kernel'`,
  );
}

async function readable(path: string): Promise<boolean> {
  return access(path, constants.R_OK).then(
    () => true,
    () => false,
  );
}
