import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClient } from '../../../src/agent/client.js';
import type { HelloAnswer } from '../../../src/agent/protocol.js';
import type { KvmtestError } from '../../../src/errors.js';
import { Machine } from '../../../src/machine/machine.js';
import { type MachinePlan, machineSpec } from '../../../src/machine/plan.js';
import type { Tracked } from '../../../src/machine/registry.js';

// a stand-in for QEMU: a shell script that ignores its argv (no guest boots in a unit test)
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function fakeQemu(body: string): { plan: Pick<MachinePlan, 'tools'>; dir: string; tracked: Tracked & { untracked: number; pid?: number } } {
  const bin = mkdtempSync(join(tmpdir(), 'kvmtest-unit-bin-'));
  const dir = mkdtempSync(join(tmpdir(), 'kvmtest-unit-machine-'));
  dirs.push(bin, dir);
  const script = join(bin, 'qemu');
  writeFileSync(script, `#!/bin/sh\n${body}\n`);
  chmodSync(script, 0o755);
  const tracked = {
    registered: Promise.resolve(),
    untracked: 0,
    pid: undefined as number | undefined,
    started(pid: number | undefined) {
      tracked.pid = pid;
    },
    untrack() {
      tracked.untracked++;
    },
  };
  return { plan: { tools: { qemu: script } } as unknown as Pick<MachinePlan, 'tools'>, dir, tracked };
}

function launch(body: string, incoming = false): { machine: Machine; dir: string; tracked: ReturnType<typeof fakeQemu>['tracked'] } {
  const { plan, dir, tracked } = fakeQemu(body);
  const planned = {
    bootMethod: { kind: 'firmware', firmware: 'bios' },
    choice: { accel: 'tcg' },
    opts: { cpus: 1, memoryMiB: 512, network: false, cloudConfig: {} },
    sandbox: false,
  } as unknown as MachinePlan;
  const spec = machineSpec(planned, 'kvmtest-unit', dir, join(dir, 'disk.qcow2'), [], join(dir, 'seed.iso'), false);
  if (incoming) {
    writeFileSync(join(dir, 'state.bin'), '');
    Object.assign(spec, { incomingState: join(dir, 'state.bin') });
  }
  return { machine: Machine.launch(plan, { spec, dir, tracked }), dir, tracked };
}

describe('Machine', () => {
  it('stop() is once-only: one SIGTERM path, the dir removed and untracked once, never reported as a crash', async () => {
    const { machine, dir, tracked } = launch('exec sleep 30');
    expect(tracked.pid).toBe(machine.pid);
    const crashes: KvmtestError[] = [];
    machine.onFatal((error) => crashes.push(error));
    const first = machine.stop();
    const second = machine.stop('kill');
    expect(second).toBe(first);
    expect(machine.stopRequested).toBe(true);
    await first;
    await machine.stop();
    expect(machine.state).toBe('stopped');
    expect(existsSync(dir)).toBe(false);
    expect(tracked.untracked).toBe(1);
    expect(machine.qemu.hasExited?.signal).toBe('SIGTERM');
    expect(crashes).toEqual([]);
    expect(machine.error).toBeUndefined();
  });

  it("stop('kill') goes straight to SIGKILL", async () => {
    const { machine } = launch('exec sleep 30');
    await machine.stop('kill');
    expect(machine.qemu.hasExited?.signal).toBe('SIGKILL');
    expect(machine.state).toBe('stopped');
  });

  it('QEMU exiting on its own while starting is QEMU_EXITED "during boot", once, with the console tail', async () => {
    const { machine } = launch('echo "SeaBIOS here"; echo "bad option" >&2; exit 3');
    const seen: KvmtestError[] = [];
    machine.onFatal((error) => seen.push(error));
    const error = await machine.fatal.catch((e: KvmtestError) => e);
    expect(error).toMatchObject({ code: 'QEMU_EXITED', message: 'QEMU exited during boot (code 3): bad option' });
    expect(error.consoleTail).toContain('SeaBIOS here');
    expect(seen).toEqual([error]);
    expect(machine.state).toBe('failed');
    // a listener added late hears of it at once
    const late: KvmtestError[] = [];
    machine.onFatal((e) => late.push(e));
    expect(late).toEqual([error]);
    await machine.stop();
    expect(machine.state).toBe('stopped');
  });

  it('QEMU exiting after the hello is QEMU_EXITED "unexpectedly", and the agent link is closed with that cause', async () => {
    const { machine } = launch('sleep 0.5; exit 3');
    const agent = new AgentClient(new PassThrough());
    machine.ready(agent, { kernel: 'test' } as unknown as HelloAnswer);
    expect(machine.state).toBe('running');
    const error = await machine.fatal.catch((e: KvmtestError) => e);
    expect(error).toMatchObject({ code: 'QEMU_EXITED', message: 'QEMU exited unexpectedly (code 3)' });
    expect(machine.state).toBe('failed');
    expect(agent.error).toBe(error);
    await machine.stop();
    // a deliberate stop closes nothing twice and reports nothing more
    expect(machine.error).toBe(error);
    expect(machine.state).toBe('stopped');
  });

  it('a login prompt with no cloud-init line is NO_CLOUD_INIT on a cold boot, but not on a restore (getty may redraw it there)', async () => {
    const prompt = 'echo; echo "Debian GNU/Linux 13 kvmtest-template ttyS0"; echo; printf "kvmtest-template login: "; sleep 1; exit 3';
    const cold = launch(prompt).machine;
    await expect(cold.fatal).rejects.toMatchObject({ code: 'NO_CLOUD_INIT' });
    await cold.stop('kill');
    const restored = launch(prompt, true).machine;
    await expect(restored.fatal).rejects.toMatchObject({ code: 'QEMU_EXITED', message: expect.stringContaining('during restore') });
    await restored.stop();
  });

  it('a kernel panic on the console is KERNEL_PANIC', async () => {
    const { machine } = launch('echo "Kernel panic - not syncing: VFS: Unable to mount root fs"; exec sleep 30');
    await expect(machine.fatal).rejects.toMatchObject({ code: 'KERNEL_PANIC', message: expect.stringContaining('panicked during boot: Kernel panic') });
    await machine.stop('kill');
  });

  it('stop() waits for the operation in flight; an operation after stop began fails with GUEST_DISPOSED', async () => {
    const { machine } = launch('exec sleep 30');
    const order: string[] = [];
    let release!: () => void;
    const save = machine.exclusive(async () => {
      order.push('save');
      await new Promise<void>((r) => (release = r));
      order.push('saved');
    });
    const stopping = machine.stop().then(() => order.push('stopped'));
    await new Promise((r) => setTimeout(r, 50));
    expect(machine.state).toBe('starting');
    expect(order).toEqual(['save']);
    await expect(machine.exclusive(async () => order.push('late'))).rejects.toMatchObject({ code: 'GUEST_DISPOSED' });
    release();
    await Promise.all([save, stopping]);
    expect(order).toEqual(['save', 'saved', 'stopped']);
  });

  it('has no QMP or agent link before it is ready (a bug, not a user error)', async () => {
    const { machine } = launch('exec sleep 30');
    expect(() => machine.qmp).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    expect(() => machine.agent).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    await machine.stop('kill');
  });
});
