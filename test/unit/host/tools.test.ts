import { describe, expect, it } from 'vitest';
import { cacheDir } from '../../../src/host/paths.js';
import { findTools, hostFamily, installHint, parseQemuVersion, qemuInstallHint } from '../../../src/host/tools.js';
import { ARCH_MACHINES } from '../../../src/qemu/arch.js';

describe('disk images and host', () => {
  it('install hints follow the host family', () => {
    expect(hostFamily('ID=ubuntu\nID_LIKE=debian\n')).toBe('debian');
    expect(hostFamily('ID="fedora"\n')).toBe('fedora');
    expect(installHint('qemu-img', 'debian')).toBe('sudo apt-get install -y qemu-utils');
    expect(installHint('iso', 'fedora')).toBe('sudo dnf install -y genisoimage');
  });

  it("each architecture's emulator: Debian's package, the binary's own name elsewhere", () => {
    expect(qemuInstallHint(ARCH_MACHINES.aarch64, 'debian')).toBe('sudo apt-get install -y qemu-system-arm');
    expect(qemuInstallHint(ARCH_MACHINES.riscv64, 'debian')).toBe('sudo apt-get install -y qemu-system-misc');
    expect(qemuInstallHint(ARCH_MACHINES.x86_64, 'debian')).toBe('sudo apt-get install -y qemu-system-x86');
    expect(qemuInstallHint(ARCH_MACHINES.aarch64, 'fedora')).toBe('sudo dnf install -y qemu-system-aarch64');
    expect(qemuInstallHint(ARCH_MACHINES.riscv64, 'unknown')).toBe("install QEMU's qemu-system-riscv64");
  });

  it('a missing emulator is QEMU_NOT_FOUND naming it and how to install it', async () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      await expect(findTools({ binary: 'qemu-system-aarch64', debianPackage: 'qemu-system-arm' })).rejects.toMatchObject({
        code: 'QEMU_NOT_FOUND',
        message: expect.stringMatching(/qemu-system-aarch64 is not on PATH/),
      });
    } finally {
      process.env.PATH = path;
    }
  });

  it('parses QEMU versions and finds the cache directory', () => {
    expect(parseQemuVersion('QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)')).toBe('7.2.22');
    expect(cacheDir({ KVMTEST_CACHE: '/c' })).toBe('/c');
    expect(cacheDir({ XDG_CACHE_HOME: '/x' })).toBe('/x/kvmtest');
  });
});
