import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { copyUefiVars, DEFAULT_BOOT_TIMEOUT_MS, type MachinePlan, machineSpec, RESTORE_TIMEOUT_MS, startTimeoutMs, withFreePorts } from '../../../src/machine/plan.js';
import { type BootMethod, buildQemuArgs } from '../../../src/qemu/argv.js';

const plan = (over: Partial<MachinePlan['opts']> = {}, scale = 1, sandbox = false) =>
  ({
    bootMethod: { kind: 'firmware', firmware: 'bios' },
    choice: { accel: 'tcg', timeoutScale: scale },
    opts: { cpus: 2, memoryMiB: 1024, network: false, cloudConfig: {}, ...over },
    sandbox,
  }) as unknown as MachinePlan;

describe('machine plan', () => {
  it('a spec puts the sockets in the private dir and takes CPUs, memory and accel from the plan', () => {
    const spec = machineSpec(plan(), 'kvmtest-1', '/g', '/g/disk.qcow2', [{ path: '/base.qcow2', format: 'qcow2' }], '/g/seed.iso', false);
    expect(spec).toEqual({
      name: 'kvmtest-1',
      accel: 'tcg',
      cpus: 2,
      memoryMiB: 1024,
      disk: '/g/disk.qcow2',
      backing: [{ path: '/base.qcow2', format: 'qcow2' }],
      seed: '/g/seed.iso',
      boot: { kind: 'firmware', firmware: 'bios' },
      qmpSocket: '/g/qmp.sock',
      agentSocket: '/g/agent.sock',
      network: false,
    });
  });

  it('extra QEMU arguments and the sandbox come from the resolved options and the plan only', () => {
    const spec = machineSpec(plan({ qemuArgs: ['-smbios', 'type=1'] }, 1, true), 'n', '/d', '/d/disk', [], '/d/seed', false);
    expect(spec.extraArgs).toEqual(['-smbios', 'type=1']);
    expect(spec.sandbox).toBe(true);
    expect(buildQemuArgs(spec).slice(-2)).toEqual(['-smbios', 'type=1']);
  });

  it('equal plans give equal argv (the snapshot key is built from it with placeholders)', () => {
    const a = buildQemuArgs(machineSpec(plan(), 'NAME', '/DIR', '/DIR/disk.qcow2', [{ path: '/BASE0', format: 'qcow2' }], '/DIR/seed.iso', false));
    const b = buildQemuArgs(machineSpec(plan(), 'NAME', '/DIR', '/DIR/disk.qcow2', [{ path: '/BASE0', format: 'qcow2' }], '/DIR/seed.iso', false));
    expect(a).toEqual(b);
    expect(a.join(' ')).toContain('/DIR/qmp.sock');
  });

  it("the start timeout: the user's, else the boot or restore default scaled for TCG", () => {
    expect(startTimeoutMs(plan({ bootTimeoutMs: 5000 }, 5), false)).toBe(5000);
    expect(startTimeoutMs(plan({}, 5), false)).toBe(DEFAULT_BOOT_TIMEOUT_MS * 5);
    expect(startTimeoutMs(plan({}, 5), true)).toBe(RESTORE_TIMEOUT_MS * 5);
  });

  it('free host ports fill the forwards left unset; set ones and outbound: false are kept', async () => {
    expect(await withFreePorts(false)).toBe(false);
    const network = await withFreePorts({ forwards: [{ guest: 22 }, { guest: 80, host: 8080 }], outbound: false });
    expect(network).toMatchObject({
      forwards: [
        { guest: 22, host: expect.any(Number) },
        { guest: 80, host: 8080 },
      ],
      outbound: false,
    });
    expect((network as { forwards: { host: number }[] }).forwards[0]!.host).toBeGreaterThan(0);
  });
});

describe('per-guest machine files', () => {
  const prep = (bootMethod: BootMethod) => ({ bootMethod, choice: { accel: 'tcg' }, opts: { cpus: 1, memoryMiB: 512 }, sandbox: true }) as unknown as MachinePlan;
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
