/**
 * Faults injected into running guests: the agent killed inside the guest, a kernel panic, the guest
 * powering itself off, QEMU killed from outside, a full disk during a push. Every pending request
 * rejects with an error naming the cause (never a wait for its own timeout, which is set to minutes
 * here so that a hang would show as EXEC_TIMEOUT), with the console tail where the guest explains it.
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { boot, type Guest } from '../../src/index.js';
import { guestDirs } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'kvmtest-test-'));
const guests: Guest[] = [];
afterAll(async () => {
  await Promise.all(guests.map((g) => g.dispose()));
  rmSync(work, { recursive: true, force: true });
});

/** The same settings as the other files' snapshot guests: restored in about a second. */
async function guest(): Promise<Guest> {
  const vm = await boot({ image: 'debian-12', boot: 'kernel', snapshot: true });
  guests.push(vm);
  return vm;
}

const hang = (vm: Guest) =>
  vm.exec(['sleep', '1000'], { timeout: '5m' }).then(
    () => undefined,
    (error: unknown) => error,
  );

describe('faults inside the guest', () => {
  it('the agent killed inside the guest: pending requests fail at once, new ones work once systemd restarts it', async () => {
    const vm = await guest();
    const pending = hang(vm);
    const killer = vm.exec(['sh', '-c', 'sleep 1; kill -9 "$(systemctl show -p MainPID --value kvmtest-agent)"'], { timeout: '5m' }).catch((e) => e);
    const [error, killerError] = await Promise.all([pending, killer]);
    expect(error).toMatchObject({ code: 'AGENT_DISCONNECTED', message: expect.stringMatching(/agent went away inside the guest/) });
    expect(killerError).toMatchObject({ code: 'AGENT_DISCONNECTED' });
    const after = await vm.exec(['sh', '-c', 'echo back; systemctl show -p NRestarts --value kvmtest-agent']);
    expect(after.stdout).toMatch(/^back\n[1-9]/);
    expect(vm.state).toBe('running');
  });

  it('a kernel panic fails pending requests with KERNEL_PANIC and the panic in the console tail', async () => {
    const vm = await guest();
    const pending = hang(vm);
    void vm.exec(['sh', '-c', 'sleep 1; echo c > /proc/sysrq-trigger']).catch(() => {});
    const error = await pending;
    expect(error).toMatchObject({ code: 'KERNEL_PANIC' });
    expect((error as { consoleTail: string }).consoleTail).toMatch(/Kernel panic - not syncing: sysrq triggered crash/);
    expect(vm.state).toBe('failed');
    await expect(vm.exec(['true'])).rejects.toMatchObject({ code: 'KERNEL_PANIC' });
    await vm.dispose();
  });

  it('the guest powering itself off fails pending requests with the reason', async () => {
    const vm = await guest();
    const pending = hang(vm);
    void vm.exec(['sh', '-c', 'sleep 1; poweroff -f']).catch(() => {});
    const error = await pending;
    expect(error).toMatchObject({ code: 'QEMU_EXITED', message: expect.stringMatching(/shut down|QEMU exited/) });
    expect((error as { consoleTail?: string }).consoleTail).toBeDefined();
    await vm.dispose();
  });

  it('QEMU killed from outside fails pending requests and pushes with the exit', async () => {
    const vm = await guest();
    const big = join(work, 'big.bin');
    writeFileSync(big, randomBytes(64 << 20));
    const pending = hang(vm);
    const pushing = vm.push(big, '/root/big.bin').then(
      () => undefined,
      (e: unknown) => e,
    );
    await new Promise((r) => setTimeout(r, 500));
    process.kill(vm.pid!, 'SIGKILL');
    for (const error of await Promise.all([pending, pushing])) {
      expect(error).toMatchObject({ code: 'QEMU_EXITED', message: expect.stringMatching(/QEMU exited unexpectedly \(SIGKILL\)/) });
    }
    await vm.dispose();
    expect(guestDirs().filter((d) => vm.info.dir.endsWith(d))).toEqual([]);
  });

  it('a full disk during a push fails the push clearly; guest and host stay usable', async () => {
    const vm = await guest();
    expect((await vm.exec(['sh', '-c', 'mkdir -p /mnt/small && mount -t tmpfs -o size=8m tmpfs /mnt/small'])).exitCode).toBe(0);
    const big = join(work, 'too-big.bin');
    writeFileSync(big, randomBytes(32 << 20));
    const error = await vm.push(big, '/mnt/small/too-big.bin').catch((e) => e);
    expect(error).toMatchObject({ code: 'GUEST_IO', message: expect.stringMatching(/No space left on device/) });
    const small = join(work, 'small.txt');
    writeFileSync(small, 'fits\n');
    await vm.push(small, '/root/small.txt');
    expect((await vm.exec(['cat', '/root/small.txt'])).stdout).toBe('fits\n');
  });
});
