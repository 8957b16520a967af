import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HostError, InputError } from '../../../src/errors.js';
import { ARCH_MACHINES, machineFor, qemuArch } from '../../../src/qemu/arch.js';
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
  it("x86_64 → q35, aarch64 → virt with the host GIC; the CPU is the host's under KVM and max under TCG", () => {
    expect(machineFor('x86_64')).toMatchObject({ machine: 'q35', cpu: { kvm: 'host', tcg: 'max' } });
    expect(machineFor('aarch64')).toMatchObject({ machine: 'virt,gic-version=max', cpu: { kvm: 'host', tcg: 'max' } });
    expect(Object.keys(ARCH_MACHINES).sort()).toEqual(['aarch64', 'x86_64']);
  });

  it.each(['riscv64', 'ppc64', 's390x', 'x64', 'arm64', '', 'toString', '__proto__'])('refuses %j with UNSUPPORTED_ARCH (a HostError), never q35', (arch) => {
    let caught: unknown;
    try {
      machineFor(arch);
    } catch (error) {
      caught = error;
    }
    expect(caught).toMatchObject({ code: 'UNSUPPORTED_ARCH', category: 'host', message: expect.stringContaining(JSON.stringify(arch)) });
    expect(caught).toBeInstanceOf(HostError);
    expect(caught).not.toBeInstanceOf(InputError);
    expect(() => buildQemuArgs({ ...base, arch })).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_ARCH' }));
  });

  it("names Node's architectures as QEMU does", () => {
    expect(qemuArch('x64')).toBe('x86_64');
    expect(qemuArch('arm64')).toBe('aarch64');
    expect(qemuArch('riscv64')).toBe('riscv64');
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
});
