import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HostError, InputError } from '../../../src/errors.js';
import { hostMachineArch } from '../../../src/host/accel.js';
import { ARCH_MACHINES, defaultArch, isMachineArch, type MachineArch, machineFor, restoreBlocker } from '../../../src/qemu/arch.js';
import { buildQemuArgs, type MachineSpec } from '../../../src/qemu/argv.js';
import { valuesAfter } from '../fixtures/argv.js';
import { machineSpecOf } from '../fixtures/machine-spec.js';

const base: MachineSpec = machineSpecOf();
// the same four specs the golden argv was recorded from, before the machine type came from the arch
const SPECS: MachineSpec[] = [
  base,
  { ...base, accel: 'kvm', sandbox: true, network: { forwards: [{ host: 1, guest: 2 }], outbound: false } },
  { ...base, boot: { kind: 'firmware', firmware: 'uefi', code: '/c', vars: '/v' }, incomingState: '/s', extraArgs: ['-x'] },
  { ...base, boot: { kind: 'kernel', kernel: '/k', initrd: '/i', append: 'a' } },
];

describe('the machine type per architecture', () => {
  it("x86_64 → q35, aarch64 → virt with the host GIC, riscv64 → virt; the CPU is the host's under KVM and TCG's fullest otherwise", () => {
    expect(machineFor('x86_64')).toMatchObject({ binary: 'qemu-system-x86_64', machine: 'q35', cpu: { kvm: 'host', tcg: 'max' }, console: 'ttyS0', firmware: 'bios', vmgenid: true });
    expect(machineFor('aarch64')).toMatchObject({
      binary: 'qemu-system-aarch64',
      debianPackage: 'qemu-system-arm',
      machine: 'virt,gic-version=max',
      cpu: { kvm: 'host', tcg: 'max' },
      console: 'ttyAMA0',
      firmware: 'uefi',
      vmgenid: false,
    });
    expect(machineFor('riscv64')).toMatchObject({ binary: 'qemu-system-riscv64', debianPackage: 'qemu-system-misc', machine: 'virt', cpu: { tcg: 'rv64' }, console: 'ttyS0', firmware: 'uboot' });
    expect(Object.keys(ARCH_MACHINES).sort()).toEqual(['aarch64', 'riscv64', 'x86_64']);
    // only x86 has a named model every KVM host gives (capsules move between hosts on it)
    expect(Object.entries(ARCH_MACHINES).flatMap(([arch, m]) => (m.portableCpu ? [arch] : []))).toEqual(['x86_64']);
  });

  it.each(['ppc64', 's390x', 'x64', 'arm64', 'amd64', 'riscv', '', 'toString', '__proto__'])('refuses %j with UNSUPPORTED_ARCH (a HostError), never q35', (arch) => {
    let caught: unknown;
    try {
      machineFor(arch);
    } catch (error) {
      caught = error;
    }
    expect(caught).toMatchObject({ code: 'UNSUPPORTED_ARCH', category: 'host', message: expect.stringContaining(JSON.stringify(arch)) });
    expect(caught).toBeInstanceOf(HostError);
    expect(caught).not.toBeInstanceOf(InputError);
    expect(isMachineArch(arch)).toBe(false);
    expect(() => buildQemuArgs({ ...base, arch: arch as MachineArch })).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_ARCH' }));
  });

  it("names Node's architectures as QEMU does; the default guest is the host's", () => {
    expect(hostMachineArch('x64')).toBe('x86_64');
    expect(hostMachineArch('arm64')).toBe('aarch64');
    expect(hostMachineArch('riscv64')).toBe('riscv64');
    expect(defaultArch()).toBe(hostMachineArch(process.arch));
  });
});

describe('what a QEMU can restore', () => {
  it('riscv64 machines saved by QEMU 7.2 never run again after a load (measured): refused with the reason; others, and newer QEMUs, are tried', () => {
    expect(restoreBlocker('riscv64', '7.2.22')).toMatch(/QEMU 7\.2\.22 cannot restore a saved riscv64 machine/);
    expect(restoreBlocker('riscv64', '7.1')).toBeDefined();
    expect(restoreBlocker('riscv64', '8.0.0')).toBeUndefined();
    expect(restoreBlocker('aarch64', '7.2.22')).toBeUndefined();
    expect(restoreBlocker('x86_64', '7.2.22')).toBeUndefined();
  });
});

describe('QEMU argv per architecture', () => {
  it('x86_64 argv is byte-identical to the q35-only argv (snapshot keys digest it), whether arch is given or defaulted on an x86_64 host', () => {
    const golden = readFileSync(join(import.meta.dirname, 'argv-x86_64.golden.json'), 'utf8').trim();
    expect(JSON.stringify(SPECS.map((s) => buildQemuArgs({ ...s, arch: 'x86_64' })))).toBe(golden);
    if (process.arch === 'x64') expect(JSON.stringify(SPECS.map(buildQemuArgs))).toBe(golden);
  });

  it('aarch64 gets virt, never q35', () => {
    const tcg = buildQemuArgs({ ...base, arch: 'aarch64' });
    expect(valuesAfter(tcg, '-machine')).toEqual(['virt,gic-version=max,graphics=off']);
    expect(tcg.join(' ')).not.toContain('q35');
    expect(valuesAfter(tcg, '-cpu')).toEqual(['max']);
    const kvm = buildQemuArgs({ ...base, arch: 'aarch64', accel: 'kvm' });
    expect(valuesAfter(kvm, '-accel')).toEqual(['kvm']);
    expect(valuesAfter(kvm, '-cpu')).toEqual(['host']);
  });

  it('aarch64 and riscv64 have no vmgenid (QEMU 7.2 has it on x86 only) and keep every virtio device kvmtest needs', () => {
    for (const arch of ['aarch64', 'riscv64'] as const) {
      const args = buildQemuArgs({ ...base, arch });
      expect(args.join(' ')).not.toContain('vmgenid');
      const devices = valuesAfter(args, '-device').map((d) => d.split(',')[0]);
      expect(devices).toEqual(expect.arrayContaining(['virtio-rng-pci', 'virtio-blk-pci', 'virtio-serial-pci', 'virtserialport', 'virtio-scsi-pci']));
      expect(valuesAfter(args, '-serial')).toEqual(['chardev:console0']);
    }
    expect(valuesAfter(buildQemuArgs({ ...base, arch: 'x86_64' }), '-device')).toContain('vmgenid,guid=auto');
  });

  it('riscv64 gets virt and rv64 under TCG; its firmware boot hands QEMU U-Boot as the kernel OpenSBI starts', () => {
    const args = buildQemuArgs({ ...base, arch: 'riscv64', boot: { kind: 'firmware', firmware: 'uboot', loader: '/usr/lib/u-boot/qemu-riscv64_smode/uboot.elf' } });
    expect(valuesAfter(args, '-machine')).toEqual(['virt,graphics=off']);
    expect(valuesAfter(args, '-cpu')).toEqual(['rv64']);
    expect(valuesAfter(args, '-kernel')).toEqual(['/usr/lib/u-boot/qemu-riscv64_smode/uboot.elf']);
    expect(args).not.toContain('-bios');
    expect(args).not.toContain('-initrd');
  });

  it('aarch64 UEFI is two pflash drives, the code read-only, the vars the machine’s own copy', () => {
    const args = buildQemuArgs({ ...base, arch: 'aarch64', boot: { kind: 'firmware', firmware: 'uefi', code: '/usr/share/AAVMF/AAVMF_CODE.fd', vars: '/dir/uefi-vars.fd' } });
    expect(valuesAfter(args, '-drive')).toEqual(['if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd', 'if=pflash,format=raw,unit=1,file=/dir/uefi-vars.fd']);
  });
});
