import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { copyUefiVars, machineSpec, type Prepared } from '../../../src/guest/prepare.js';
import type { BootMethod } from '../../../src/qemu/argv.js';

describe('per-guest machine files', () => {
  const prep = (bootMethod: BootMethod) => ({ bootMethod, choice: { accel: 'tcg' }, opts: { cpus: 1, memoryMiB: 512 }, options: {}, sandbox: true }) as unknown as Prepared;
  const uefi: BootMethod = { kind: 'firmware', firmware: 'uefi', code: '/ovmf/CODE.fd', vars: '/shared/VARS.fd' };

  it('each UEFI guest writes its own copy of the vars file, in its private dir', async () => {
    const dirs = [mkdtempSync(join(tmpdir(), 'kvmtest-unit-')), mkdtempSync(join(tmpdir(), 'kvmtest-unit-'))];
    const shared = join(dirs[0]!, 'VARS.fd');
    writeFileSync(shared, 'vars', { mode: 0o644 });
    try {
      const specs = dirs.map((dir) => machineSpec(prep({ ...uefi, vars: shared }), 'kvmtest-1', dir, '/d', [], '/s', false));
      expect(specs.map((s) => (s.boot as { vars: string }).vars)).toEqual(dirs.map((dir) => join(dir, 'uefi-vars.fd')));
      for (const dir of dirs) await copyUefiVars(prep({ ...uefi, vars: shared }), dir);
      for (const dir of dirs) expect(statSync(join(dir, 'uefi-vars.fd')).mode & 0o777).toBe(0o600);
      expect(specs[0]!.sandbox).toBe(true);
    } finally {
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('BIOS and kernel boots have no vars file to copy', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvmtest-unit-'));
    try {
      await copyUefiVars(prep({ kind: 'firmware', firmware: 'bios' }), dir);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
