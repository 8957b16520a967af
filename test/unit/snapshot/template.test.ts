import { describe, expect, it } from 'vitest';
import type { MachinePlan } from '../../../src/machine/plan.js';
import { buildQemuArgs } from '../../../src/qemu/argv.js';
import { snapshotKey } from '../../../src/snapshot/key.js';
import { templateArgs } from '../../../src/snapshot/template.js';

const plan = {
  bootMethod: { kind: 'firmware', firmware: 'bios' },
  choice: { accel: 'tcg' },
  opts: { cpus: 2, memoryMiB: 1024, network: false, cloudConfig: {} },
  sandbox: true,
} as unknown as MachinePlan;
const chain = [{ path: '/BASE0', format: 'qcow2' as const }];
const inputs = { baseDigest: 'a'.repeat(64), qemuVersion: '7.2.22', agentDigest: 'b'.repeat(64), cloudConfig: {} };

describe('the template argv the snapshot key hashes', () => {
  it('has the RAM in a shared file under placeholders, no sandbox, and nothing private', () => {
    const args = templateArgs(plan, chain);
    expect(args).toContain('memory-backend-file,id=ram0,size=1024M,mem-path=/DIR/ram.bin,share=on');
    expect(args).toContain('q35,graphics=off,memory-backend=ram0');
    expect(args).not.toContain('-sandbox');
    expect(args).not.toContain('-incoming');
    expect(templateArgs(plan, chain)).toEqual(args);
  });

  it('changes the key: a whole-RAM snapshot (same settings, anonymous RAM) is never found', () => {
    const templated = templateArgs(plan, chain);
    const wholeRam = buildQemuArgs({
      name: 'NAME',
      accel: 'tcg',
      cpus: 2,
      memoryMiB: 1024,
      disk: '/DIR/disk.qcow2',
      backing: chain,
      seed: '/DIR/seed.iso',
      boot: { kind: 'firmware', firmware: 'bios' },
      qmpSocket: '/DIR/qmp.sock',
      agentSocket: '/DIR/agent.sock',
      network: false,
    });
    expect(templated.filter((a) => !wholeRam.includes(a))).toEqual(['q35,graphics=off,memory-backend=ram0', '-object', 'memory-backend-file,id=ram0,size=1024M,mem-path=/DIR/ram.bin,share=on']);
    expect(snapshotKey({ ...inputs, machineArgs: templated })).not.toBe(snapshotKey({ ...inputs, machineArgs: wholeRam }));
  });

  it('follows the memory size (the RAM file is that big)', () => {
    const bigger = { ...plan, opts: { ...plan.opts, memoryMiB: 2048 } } as MachinePlan;
    expect(snapshotKey({ ...inputs, machineArgs: templateArgs(bigger, chain) })).not.toBe(snapshotKey({ ...inputs, machineArgs: templateArgs(plan, chain) }));
  });
});
