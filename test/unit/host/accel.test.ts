import { describe, expect, it } from 'vitest';
import { chooseAccel, judgeKvm, type KvmProbe } from '../../../src/host/accel.js';

const cpuinfo = (flags: string) => `processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme de pse ${flags} sse sse2\n\nprocessor\t: 1\nflags\t\t: fpu ${flags}\n`;
const probe = (over: Partial<KvmProbe>): KvmProbe => ({ arch: 'x64', cpuinfo: cpuinfo('vmx'), device: 'ok', moduleLoaded: true, ...over });

describe('KVM detection', () => {
  it('uses KVM where /dev/kvm opens and the CPU has vmx or svm', () => {
    expect(chooseAccel('auto', probe({})).accel).toBe('kvm');
    expect(chooseAccel('auto', probe({ cpuinfo: cpuinfo('svm') })).accel).toBe('kvm');
    expect(chooseAccel('kvm', probe({})).timeoutScale).toBe(1);
  });

  it("falls back to TCG on a paravirtual KVM without vmx/svm (the project's own machines), with a warning and scaled timeouts", () => {
    const choice = chooseAccel('auto', probe({ cpuinfo: cpuinfo('hypervisor') }));
    expect(choice).toMatchObject({ accel: 'tcg', timeoutScale: 5 });
    expect(choice.warning).toMatch(/neither vmx nor svm/);
    expect(choice.warning!.split('\n')).toHaveLength(1);
  });

  it("'kvm' where it cannot work fails at once, saying why and how to fix it", () => {
    expect(() => chooseAccel('kvm', probe({ device: 'EACCES' }))).toThrowError(expect.objectContaining({ code: 'KVM_UNUSABLE', message: expect.stringMatching(/kvm group/) }));
    expect(() => chooseAccel('kvm', probe({ device: 'ENOENT', moduleLoaded: false }))).toThrowError(/module is not loaded.*modprobe/);
    expect(() => chooseAccel('kvm', probe({ cpuinfo: cpuinfo('') }))).toThrowError(/neither vmx nor svm/);
  });

  it('does not look for x86 flags on other architectures', () => {
    expect(judgeKvm(probe({ arch: 'arm64', cpuinfo: 'Features: fp asimd' })).usable).toBe(true);
  });

  it("'tcg' never touches KVM", () => {
    expect(chooseAccel('tcg', probe({ device: 'ENOENT' })).accel).toBe('tcg');
  });
});

describe('KVM per guest architecture', () => {
  it("uses KVM only for the host's own architecture, emulating another with TCG, said once and with scaled timeouts", () => {
    expect(chooseAccel('auto', probe({}), 'x86_64').accel).toBe('kvm');
    for (const guest of ['aarch64', 'riscv64']) {
      const choice = chooseAccel('auto', probe({}), guest);
      expect(choice).toMatchObject({ accel: 'tcg', timeoutScale: 5 });
      expect(choice.reason).toContain(`${guest} guest on x86_64 host`);
      expect(choice.warning!.split('\n')).toHaveLength(1);
    }
    // an arm64 host with a working KVM runs aarch64 guests on it, and emulates x86_64 ones
    const arm = probe({ arch: 'arm64', cpuinfo: 'Features: fp asimd' });
    expect(chooseAccel('auto', arm, 'aarch64').accel).toBe('kvm');
    expect(chooseAccel('auto', arm).accel).toBe('kvm');
    expect(chooseAccel('auto', arm, 'x86_64').accel).toBe('tcg');
  });

  it("'kvm' for a foreign guest fails at once, saying why", () => {
    expect(() => chooseAccel('kvm', probe({}), 'aarch64')).toThrowError(expect.objectContaining({ code: 'KVM_UNUSABLE', message: expect.stringMatching(/aarch64 guest on x86_64 host.*'auto'/) }));
    expect(chooseAccel('tcg', probe({}), 'riscv64').accel).toBe('tcg');
  });
});
