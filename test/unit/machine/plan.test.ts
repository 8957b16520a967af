import { describe, expect, it } from 'vitest';
import { buildQemuArgs } from '../../../src/qemu/argv.js';
import { DEFAULT_BOOT_TIMEOUT_MS, machineSpec, RESTORE_TIMEOUT_MS, startTimeoutMs, withFreePorts, type MachinePlan } from '../../../src/machine/plan.js';

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

  it('the start timeout: the user\'s, else the boot or restore default scaled for TCG', () => {
    expect(startTimeoutMs(plan({ bootTimeoutMs: 5000 }, 5), false)).toBe(5000);
    expect(startTimeoutMs(plan({}, 5), false)).toBe(DEFAULT_BOOT_TIMEOUT_MS * 5);
    expect(startTimeoutMs(plan({}, 5), true)).toBe(RESTORE_TIMEOUT_MS * 5);
  });

  it('free host ports fill the forwards left unset; set ones and outbound: false are kept', async () => {
    expect(await withFreePorts(false)).toBe(false);
    const network = await withFreePorts({ forwards: [{ guest: 22 }, { guest: 80, host: 8080 }], outbound: false });
    expect(network).toMatchObject({ forwards: [{ guest: 22, host: expect.any(Number) }, { guest: 80, host: 8080 }], outbound: false });
    expect((network as { forwards: { host: number }[] }).forwards[0]!.host).toBeGreaterThan(0);
  });
});
