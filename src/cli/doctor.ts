import { hostMachineArch, judgeKvm, probeKvm } from '../host/accel.js';
import { firmwareInstallHint, locateAarch64Uefi, locateRiscv64Uboot } from '../host/firmware.js';
import { probeSandbox } from '../host/sandbox.js';
import { findIsoTool, installHint, qemuInstallHint, qemuSystemName, qemuVersion, which } from '../host/tools.js';
import { ARCH_MACHINES, MACHINE_ARCHES, type MachineArch } from '../qemu/arch.js';

export interface DoctorLine {
  ok: boolean;
  what: string;
  detail: string;
  fix?: string;
}

/** Checks what kvmtest needs on this host; each line says what is there, or how to get it. */
export async function doctor(): Promise<DoctorLine[]> {
  const lines: DoctorLine[] = [];
  const qemuName = qemuSystemName();
  const qemu = await which(qemuName);
  lines.push(
    qemu
      ? { ok: true, what: qemuName, detail: `${qemu} (QEMU ${await qemuVersion(qemu).catch(() => 'unknown')})` }
      : { ok: false, what: qemuName, detail: 'not found on PATH', fix: installHint('qemu') },
  );
  if (qemu) lines.push(await sandboxLine(qemu));
  const qemuImg = await which('qemu-img');
  lines.push(qemuImg ? { ok: true, what: 'qemu-img', detail: qemuImg } : { ok: false, what: 'qemu-img', detail: 'not found on PATH', fix: installHint('qemu-img') });
  try {
    const iso = await findIsoTool();
    lines.push({ ok: true, what: 'ISO tool', detail: `${iso.path} (writes the cloud-init seed)` });
  } catch {
    lines.push({ ok: false, what: 'ISO tool', detail: 'neither genisoimage nor xorriso found', fix: installHint('iso') });
  }
  const verdict = judgeKvm(await probeKvm());
  lines.push(
    verdict.usable
      ? { ok: true, what: 'acceleration', detail: `KVM: ${verdict.reason}` }
      : { ok: true, what: 'acceleration', detail: `TCG (software emulation, 10-20x slower): KVM not usable: ${verdict.reason}`, ...(verdict.fix ? { fix: verdict.fix } : {}) },
  );
  const debootstrap = await which('debootstrap');
  lines.push(
    debootstrap
      ? { ok: true, what: 'debootstrap', detail: `${debootstrap} (kvmtest image build debian-12)` }
      : { ok: true, what: 'debootstrap', detail: 'not found: needed only to build images offline (kvmtest image build)', fix: 'sudo apt-get install -y debootstrap' },
  );
  for (const arch of MACHINE_ARCHES) if (arch !== hostMachineArch()) lines.push(...(await foreignArchLines(arch)));
  return lines;
}

/**
 * Another architecture's guests: its emulator, its firmware, and what an image build for it needs
 * (qemu-user-static). Informational: kvmtest works without them until such a guest is asked for.
 */
export async function foreignArchLines(arch: MachineArch): Promise<DoctorLine[]> {
  const machine = ARCH_MACHINES[arch];
  const qemu = await which(machine.binary);
  const lines: DoctorLine[] = [
    qemu
      ? { ok: true, what: `${arch} guests`, detail: `${qemu} (QEMU ${await qemuVersion(qemu).catch(() => 'unknown')}), emulated with TCG: not this host's architecture` }
      : { ok: true, what: `${arch} guests`, detail: `${machine.binary} not found: needed only for arch: '${arch}'`, fix: qemuInstallHint(machine) },
  ];
  const what = `${arch} firmware`;
  if (machine.firmware === 'uefi') {
    const uefi = await locateAarch64Uefi();
    lines.push(uefi ? { ok: true, what, detail: `UEFI ${uefi.code}` } : { ok: true, what, detail: "no AAVMF (UEFI) found: boot: 'kernel' works without it", fix: firmwareInstallHint('uefi') });
  } else if (machine.firmware === 'uboot') {
    const uboot = await locateRiscv64Uboot();
    lines.push(
      uboot
        ? { ok: true, what, detail: `OpenSBI (QEMU's own) + U-Boot ${uboot}` }
        : { ok: true, what, detail: "no U-Boot for qemu-riscv64_smode found: boot: 'kernel' works without it", fix: firmwareInstallHint('uboot') },
    );
  }
  const user = `qemu-${arch}-static`;
  const userPath = await which(user);
  lines.push(
    userPath
      ? { ok: true, what: `${arch} image builds`, detail: `${userPath} (debootstrap's second stage runs under it, registered with binfmt_misc for the build only)` }
      : { ok: true, what: `${arch} image builds`, detail: `${user} not found: needed only for kvmtest image build --arch ${arch}`, fix: 'sudo apt-get install -y qemu-user-static' },
  );
  return lines;
}

/** QEMU's seccomp sandbox: guests run without it (still working) where the build or kernel lacks it. */
export async function sandboxLine(qemu: string): Promise<DoctorLine> {
  const verdict = await probeSandbox(qemu);
  return verdict.supported
    ? { ok: true, what: 'QEMU sandbox', detail: 'seccomp on: QEMU cannot spawn processes, change privileges or use obsolete system calls' }
    : {
        ok: true,
        what: 'QEMU sandbox',
        detail: `not available, guests run without seccomp: ${verdict.reason}`,
        fix: "a QEMU built with seccomp (libseccomp) on a kernel with seccomp, such as Debian's qemu-system-x86",
      };
}

export function formatDoctor(lines: DoctorLine[]): string {
  return lines.map((l) => `${l.ok ? '✔' : '✖'} ${l.what.padEnd(22)} ${l.detail}${l.fix ? `\n  ${''.padEnd(22)} fix: ${l.fix}` : ''}`).join('\n');
}
