/**
 * Boot once, restore many: guests restored from one warm snapshot are ready at once, are not
 * copies of each other, and a corrupt snapshot is never used.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { boot, type Guest } from '../../src/index.js';
import { snapshotPaths } from '../../src/snapshot/store.js';
import { guestDirs, sha256File } from './helpers.js';

const image = inject('debian12');
const settings = { image: 'debian-12', boot: 'kernel', snapshot: true } as const;
const guests: Guest[] = [];
afterAll(async () => {
  for (const vm of guests) await vm.dispose();
});

async function identity(vm: Guest) {
  const r = await vm.exec(['sh', '-c', 'head -c 32 /dev/urandom | od -An -tx1 | tr -d " \\n"; echo; cat /etc/machine-id; hostname; date +%s.%N']);
  const [random, machineId, hostname, clock] = r.stdout.trim().split('\n');
  return { random, machineId, hostname, skewS: Math.abs(Number(clock) - Date.now() / 1000) };
}

describe('warm snapshots', () => {
  it('two guests restored from one snapshot read different random bytes and machine-ids, and keep the host clock', async () => {
    const baseBefore = await sha256File(image.disk);
    const a = await boot(settings);
    guests.push(a);
    const b = await boot(settings);
    guests.push(b);
    // a is restored, or (when a corrupt snapshot was left in the cache) booted cold and b restored
    expect(b.info.snapshot).toBeDefined();
    if (a.info.snapshot) expect(b.info.snapshot).toBe(a.info.snapshot);
    console.log(`restored to hello in ${b.info.bootMs.toFixed(0)} ms (${b.info.accel})`);
    const [ia, ib] = [await identity(a), await identity(b)];
    expect(ia.random).toMatch(/^[0-9a-f]{64}$/);
    expect(ia.random).not.toBe(ib.random);
    expect(ia.machineId).toMatch(/^[0-9a-f]{32}$/);
    expect(ia.machineId).not.toBe(ib.machineId);
    expect(ia.hostname).toBe(a.info.name);
    expect(ib.hostname).toBe(b.info.name);
    expect(ia.skewS).toBeLessThan(2);
    expect(ib.skewS).toBeLessThan(2);
    // each clone writes only to its own overlay
    await a.exec(['sh', '-c', 'echo only-a > /root/mark && sync']);
    expect((await b.exec(['sh', '-c', 'cat /root/mark 2>/dev/null || echo none'])).stdout).toBe('none\n');
    expect(await sha256File(image.disk)).toBe(baseBefore);
  });

  it('the restored agent runs commands, streams and transfers like a booted one', async () => {
    const vm = guests[0]!;
    const r = await vm.exec(['sh', '-c', 'head -c 1048576 /dev/zero | tr "\\000" x; exit 3']);
    expect(r.exitCode).toBe(3);
    expect(createHash('sha256').update(r.stdoutBytes).digest('hex')).toBe(createHash('sha256').update(Buffer.alloc(1048576, 'x')).digest('hex'));
    await vm.reconnect();
    expect((await vm.exec(['true'])).exitCode).toBe(0);
  });

  it("the template's RAM file is never written: every clone maps it private, and its digest is unchanged after clones ran and wrote to their memory", async () => {
    const key = guests[1]!.info.snapshot!;
    const { ram } = snapshotPaths(key);
    const mappings = (vm: Guest) =>
      readFileSync(`/proc/${vm.pid}/maps`, 'utf8')
        .split('\n')
        .filter((line) => line.endsWith(` ${ram}`))
        .map((line) => line.split(/\s+/)[1]);
    const before = await sha256File(ram);
    const clones: Guest[] = [];
    for (let i = 0; i < 3; i++) {
      const vm = await boot(settings);
      guests.push(vm);
      clones.push(vm);
      expect(vm.info.snapshot).toBe(key);
      // copy-on-write: mapped read-write but private (p), never shared (s)
      expect(mappings(vm).length).toBeGreaterThan(0);
      for (const perms of mappings(vm)) expect(perms).toMatch(/^rw-p$/);
    }
    // dirty the guests' memory: a tmpfs file, the page cache, the kernel's own structures
    for (const vm of [...guests.slice(0, 2), ...clones]) {
      const r = await vm.exec(['sh', '-c', 'dd if=/dev/urandom of=/dev/shm/fill bs=1M count=64 2>/dev/null && ls -R /usr >/dev/null && sync && echo 3 > /proc/sys/vm/drop_caches']);
      expect(r.exitCode).toBe(0);
    }
    const randoms = await Promise.all(clones.map(async (vm) => (await identity(vm)).random));
    expect(new Set(randoms).size).toBe(clones.length);
    for (const vm of clones) await vm.dispose();
    guests.splice(guests.length - clones.length, clones.length);
    expect(await sha256File(ram)).toBe(before);
  });

  it('a corrupt snapshot is deleted and never used: the guest boots cold, the next restore uses a new one', async () => {
    for (const vm of guests.splice(0)) await vm.dispose();
    const key = (await boot(settings).then((vm) => {
      guests.push(vm);
      return vm.info.snapshot;
    }))!;
    const { state, dir } = snapshotPaths(key);
    // same size, garbage content: only QEMU can tell
    writeFileSync(state, Buffer.alloc(statSync(state).size, 0x5a));
    const cold = await boot(settings);
    guests.push(cold);
    expect(cold.info.snapshot).toBeUndefined();
    expect(existsSync(dir)).toBe(false);
    const again = await boot(settings);
    guests.push(again);
    expect(again.info.snapshot).toBe(key);
    expect(guestDirs().length).toBe(guests.filter((g) => g.state === 'running').length);
  });
});
