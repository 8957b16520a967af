import { describe, expect, it } from 'vitest';
import { type HostQemu, incompatibility, parseCpuModels, parseMachineTypes } from '../../../src/capsule/compat.js';
import type { CapsuleManifest } from '../../../src/capsule/manifest.js';
import { compareVersions } from '../../../src/qemu/arch.js';
import { capsuleManifestOf } from '../fixtures/capsule.js';

// Lines of `qemu-system-x86_64 -machine help` (QEMU 7.2.22, Debian 12), as printed: the header, then one machine per line
const MACHINE_HELP = [
  'Supported machines are:',
  'microvm              microvm (i386)',
  'pc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-7.2)',
  'pc-i440fx-7.2        Standard PC (i440FX + PIIX, 1996) (default)',
  'pc-i440fx-1.5        Standard PC (i440FX + PIIX, 1996) (deprecated)',
  'q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)',
  'pc-q35-7.2           Standard PC (Q35 + ICH9, 2009)',
  'pc-q35-7.1           Standard PC (Q35 + ICH9, 2009)',
  'pc-q35-2.10          Standard PC (Q35 + ICH9, 2009)',
  'isapc                ISA-only PC',
  'none                 empty machine',
  'x-remote             Experimental remote machine',
  '',
].join('\n');

// Lines of `qemu-system-x86_64 -cpu help` (QEMU 7.2.22), trailing spaces kept: models, then the CPUID flags
const CPU_HELP = [
  'Available CPUs:',
  'x86 486                   (alias configured by machine type)',
  'x86 486-v1                ',
  'x86 KnightsMill           (alias configured by machine type)',
  'x86 KnightsMill-v1        Intel Xeon Phi Processor (Knights Mill)',
  'x86 Nehalem               (alias configured by machine type)',
  'x86 Nehalem-IBRS          (alias of Nehalem-v2)',
  'x86 Nehalem-v1            Intel Core i7 9xx (Nehalem Class Core i7)',
  'x86 Nehalem-v2            Intel Core i7 9xx (Nehalem Core i7, IBRS update)',
  'x86 qemu64                (alias configured by machine type)',
  'x86 qemu64-v1             QEMU Virtual CPU version 2.5+',
  'x86 base                  base CPU model type with no features enabled',
  'x86 host                  processor with all supported host features ',
  'x86 max                   Enables all features supported by the accelerator in the current host',
  '',
  'Recognized CPUID flags:',
  '  3dnow 3dnowext 3dnowprefetch abm ace2 ace2-en acpi adx aes amd-no-ssb',
  '  amd-ssbd amd-stibp amx-bf16 amx-int8 amx-tile apic arat arch-capabilities',
  '  avx512cd avx512dq avx512er avx512f avx512ifma avx512pf avx512vbmi',
  '  xsaveerptr xsaveopt xsaves xstore xstore-en xtpr',
  '',
].join('\n');

describe('compareVersions', () => {
  it.each<[string, string, number]>([
    ['7.2.22', '7.2.22', 0],
    ['7.2', '7.2.0', 0],
    ['7.2.22', '7.2.19', 1],
    ['7.2.9', '7.2.19', -1],
    ['7.10', '7.9.5', 1],
    ['8.0.0', '7.2.22', 1],
    ['7.2.22', '8.0', -1],
    ['10.0.2', '9.2.0', 1],
  ])('%s vs %s → %d', (a, b, expected) => {
    expect(compareVersions(a, b)).toBe(expected);
    expect(compareVersions(b, a)).toBe(-expected || 0);
  });
});

describe('parseMachineTypes', () => {
  it('takes the first word of each line after the header: aliases and versioned types, no descriptions', () => {
    expect(parseMachineTypes(MACHINE_HELP)).toEqual(['microvm', 'pc', 'pc-i440fx-7.2', 'pc-i440fx-1.5', 'q35', 'pc-q35-7.2', 'pc-q35-7.1', 'pc-q35-2.10', 'isapc', 'none', 'x-remote']);
  });

  it('nothing from an empty or failed run', () => {
    expect(parseMachineTypes('')).toEqual([]);
    expect(parseMachineTypes('qemu-system-x86_64: -machine help: invalid option\n')).toEqual([]);
  });
});

describe('parseCpuModels', () => {
  it('x86: the name after "x86" on each model line; the CPUID flags after "Recognized CPUID flags:" are not models', () => {
    const models = parseCpuModels(CPU_HELP);
    expect(models).toEqual(['486', '486-v1', 'KnightsMill', 'KnightsMill-v1', 'Nehalem', 'Nehalem-IBRS', 'Nehalem-v1', 'Nehalem-v2', 'qemu64', 'qemu64-v1', 'base', 'host', 'max']);
    for (const flag of ['3dnow', 'aes', 'avx512f', 'xtpr', 'amx-tile']) expect(models).not.toContain(flag);
    expect(models).not.toContain('Available');
    expect(models).not.toContain('x86');
  });

  it('one name per line (as aarch64 prints them), headers ending in ":" skipped', () => {
    expect(parseCpuModels('Available CPUs:\n  a64fx\n  cortex-a57\n  cortex-a72\n  host\n  max\n')).toEqual(['a64fx', 'cortex-a57', 'cortex-a72', 'host', 'max']);
  });
});

describe('incompatibility', () => {
  const here = (over: Partial<HostQemu> = {}): HostQemu => ({
    version: '7.2.22',
    machineTypes: parseMachineTypes(MACHINE_HELP),
    cpuModels: parseCpuModels(CPU_HELP),
    accel: 'tcg',
    ...over,
  });
  const saved = (qemu: string, machine: Partial<CapsuleManifest['machine']> = {}): Pick<CapsuleManifest, 'qemu' | 'machine'> => {
    const m = capsuleManifestOf();
    return { qemu: { version: qemu }, machine: { ...m.machine, ...machine } };
  };
  it('a host QEMU whose version is unknown is not taken as new enough', () => {
    expect(incompatibility(saved('7.2.22'), here({ version: 'unknown' }))).toMatch(/did not say its version \(unknown\)/);
  });

  it('compatible: same QEMU, or an older one saved it, on a machine type and named CPU model this QEMU has', () => {
    expect(incompatibility(saved('7.2.22'), here())).toBeUndefined();
    expect(incompatibility(saved('7.2.19'), here())).toBeUndefined();
    expect(incompatibility(saved('7.1.0', { type: 'pc-q35-7.1' }), here())).toBeUndefined();
    // a named model moves between accelerators
    expect(incompatibility(saved('7.2.22', { accel: 'kvm' }), here({ accel: 'tcg' }))).toBeUndefined();
    expect(incompatibility(saved('7.2.22'), here({ accel: 'kvm' }))).toBeUndefined();
  });

  it('saved by a newer QEMU than this one: names both versions', () => {
    const reason = incompatibility(saved('8.2.1', { type: 'pc-q35-7.2' }), here());
    expect(reason).toContain('8.2.1');
    expect(reason).toContain('7.2.22');
    expect(incompatibility(saved('7.2.23'), here())).toMatch(/QEMU 7\.2\.23 .*QEMU 7\.2\.22/);
  });

  it('a machine type this QEMU does not have', () => {
    const reason = incompatibility(saved('7.2.0', { type: 'pc-q35-8.2' }), here());
    expect(reason).toContain('pc-q35-8.2');
    expect(reason).toContain('machine type');
  });

  it('a CPU model this QEMU does not have', () => {
    const reason = incompatibility(saved('7.2.22', { cpu: 'GraniteRapids' }), here());
    expect(reason).toContain('GraniteRapids');
    expect(reason).toContain('CPU model');
    // a CPUID flag is not a model either
    expect(incompatibility(saved('7.2.22', { cpu: 'avx2' }), here())).toContain('avx2');
  });

  it("cpu 'host': only under KVM here", () => {
    expect(incompatibility(saved('7.2.22', { cpu: 'host', accel: 'kvm' }), here({ accel: 'tcg' }))).toMatch(/KVM is not usable here/);
    expect(incompatibility(saved('7.2.22', { cpu: 'host', accel: 'kvm' }), here({ accel: 'kvm' }))).toBeUndefined();
  });

  it("cpu 'max': only on the same QEMU version and accelerator", () => {
    expect(incompatibility(saved('7.2.22', { cpu: 'max', accel: 'tcg' }), here())).toBeUndefined();
    const older = incompatibility(saved('7.2.19', { cpu: 'max', accel: 'tcg' }), here());
    expect(older).toContain("'max'");
    expect(older).toContain('7.2.19');
    expect(older).toContain('7.2.22');
    expect(incompatibility(saved('7.2.22', { cpu: 'max', accel: 'kvm' }), here({ accel: 'tcg' }))).toMatch(/'max' \(kvm, QEMU 7\.2\.22\).*\(tcg, QEMU 7\.2\.22\)/);
  });

  it('the version is judged first, then the machine type, then the CPU', () => {
    const everything = saved('9.0.0', { type: 'pc-q35-9.0', cpu: 'GraniteRapids' });
    expect(incompatibility(everything, here())).toContain('9.0.0');
    expect(incompatibility({ ...everything, qemu: { version: '7.2.0' } }, here())).toContain('pc-q35-9.0');
  });
});
