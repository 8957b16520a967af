import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findAarch64Uefi, findRiscv64Uboot, firmwareInstallHint, locateAarch64Uefi, locateRiscv64Uboot } from '../../../src/host/firmware.js';

const dir = mkdtempSync(join(tmpdir(), 'kvmtest-firmware-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string) => {
  const path = join(dir, name);
  writeFileSync(path, 'x');
  return path;
};

describe('firmware of other architectures', () => {
  it('finds the first UEFI pair whose code and vars are both there', async () => {
    const code = file('CODE.fd');
    const vars = file('VARS.fd');
    const missing = { code: join(dir, 'none-code.fd'), vars };
    expect(await locateAarch64Uefi([missing, { code, vars }])).toEqual({ code, vars });
    expect(
      await findAarch64Uefi([
        { code, vars: join(dir, 'none-vars.fd') },
        { code, vars },
      ]),
    ).toEqual({ code, vars });
  });

  it('without one: FIRMWARE_NOT_FOUND naming where it looked, what to install, and the way without firmware', async () => {
    const missing = [{ code: join(dir, 'no/CODE.fd'), vars: join(dir, 'no/VARS.fd') }];
    expect(await locateAarch64Uefi(missing)).toBeUndefined();
    await expect(findAarch64Uefi(missing)).rejects.toMatchObject({ code: 'FIRMWARE_NOT_FOUND', category: 'host', message: expect.stringMatching(/no\/CODE\.fd.*Install it: .*boot: 'kernel'/) });
    await expect(findRiscv64Uboot([join(dir, 'no/uboot.elf')])).rejects.toMatchObject({ code: 'FIRMWARE_NOT_FOUND', message: expect.stringMatching(/U-Boot.*no\/uboot\.elf/) });
    expect(await locateRiscv64Uboot([join(dir, 'no/uboot.elf'), file('uboot.elf')])).toBe(join(dir, 'uboot.elf'));
  });

  it("says which package has it on the host's family", () => {
    expect(firmwareInstallHint('uefi', 'debian')).toBe('sudo apt-get install -y qemu-efi-aarch64');
    expect(firmwareInstallHint('uboot', 'debian')).toBe('sudo apt-get install -y u-boot-qemu');
    expect(firmwareInstallHint('uefi', 'fedora')).toContain('edk2-aarch64');
    expect(firmwareInstallHint('uefi', 'unknown')).toContain('AAVMF');
  });
});
