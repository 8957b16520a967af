/**
 * guest.checkpoint(): a running guest captured at one moment; every clone starts at exactly that
 * moment (files, a background process), is independent of the others and of the captured guest,
 * and is its own machine (random bytes, machine-id, hostname, SSH host key). The checkpoint's RAM
 * file is never written by its clones, and its files go when it and its clones are disposed.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boot, type Checkpoint, type Guest } from '../../src/index.js';
import { guestDirs, sha256File } from './helpers.js';

const settings = { image: 'debian-12', boot: 'kernel', snapshot: true } as const;
// the moment captured: a file, a process started in the background, an SSH host key of the guest's own
const SETUP = [
  'echo setup-done > /root/state',
  'setsid sleep 100000 </dev/null >/dev/null 2>&1 & echo $! > /root/sleeper',
  "rm -f /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub && ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key",
  'ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub > /root/source-ssh-fp',
  'sync',
].join('\n');

let source: Guest;
let checkpoint: Checkpoint;
const clones: Guest[] = [];
beforeAll(async () => {
  source = await boot(settings);
  const setup = await source.exec(['bash', '-c', SETUP]);
  expect(setup.exitCode, setup.stderr).toBe(0);
  checkpoint = await source.checkpoint();
  console.log(`checkpoint of a ${source.info.memoryMiB} MiB guest: ${checkpoint.info.tookMs.toFixed(0)} ms, paused ${checkpoint.info.pauseMs.toFixed(0)} ms`);
});
afterAll(async () => {
  for (const vm of clones) await vm.dispose();
  await checkpoint?.dispose();
  await source?.dispose();
});

async function facts(vm: Guest) {
  const sh = async (script: string) => (await vm.exec(['sh', '-c', script])).stdout.trim();
  return {
    state: await sh('cat /root/state'),
    sleeperAlive: await sh('kill -0 "$(cat /root/sleeper)" 2>/dev/null && echo alive || echo gone'),
    fingerprint: await sh('ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub'),
    sourceFingerprint: await sh('cat /root/source-ssh-fp'),
    machineId: await sh('cat /etc/machine-id'),
    hostname: await sh('hostname'),
    random: await sh('head -c 32 /dev/urandom | od -An -tx1 | tr -d " \\n"'),
  };
}

describe('guest.checkpoint()', () => {
  it("clones start at the checkpoint's moment: its files, its background process", async () => {
    const started = performance.now();
    const a = await checkpoint.boot();
    clones.push(a);
    console.log(`clone of the checkpoint to hello: ${(performance.now() - started).toFixed(0)} ms`);
    const fa = await facts(a);
    expect(fa.state).toBe('setup-done');
    expect(fa.sleeperAlive).toBe('alive');
    expect(fa.hostname).toBe(a.info.name);
  });

  it('clones are independent of each other and of the guest that was captured, which runs on', async () => {
    const [a] = clones;
    await a!.exec(['sh', '-c', 'echo only-a > /root/mark && sync']);
    await source.exec(['sh', '-c', 'echo only-source > /root/later && sync']);
    const b = await checkpoint.boot({ hostname: 'clone-b' });
    clones.push(b);
    expect((await b.exec(['sh', '-c', 'cat /root/mark /root/later 2>/dev/null || echo none'])).stdout).toBe('none\n');
    expect((await b.exec(['hostname'])).stdout.trim()).toBe('clone-b');
    expect((await source.exec(['cat', '/root/later'])).stdout).toBe('only-source\n');
    expect((await source.exec(['sh', '-c', 'cat /root/mark 2>/dev/null || echo none'])).stdout).toBe('none\n');
  });

  it('each clone is its own machine: random bytes, machine-id, hostname and SSH host key differ', async () => {
    const [fa, fb, fs] = [await facts(clones[0]!), await facts(clones[1]!), await facts(source)];
    expect(fa.random).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set([fa.random, fb.random, fs.random]).size).toBe(3);
    expect(fa.machineId).toMatch(/^[0-9a-f]{32}$/);
    expect(new Set([fa.machineId, fb.machineId, fs.machineId]).size).toBe(3);
    expect(new Set([fa.hostname, fb.hostname, fs.hostname]).size).toBe(3);
    expect(fs.fingerprint).toBe(fs.sourceFingerprint);
    expect(fa.fingerprint).toMatch(/ED25519/);
    expect(new Set([fa.fingerprint, fb.fingerprint, fs.fingerprint]).size).toBe(3);
  });

  it("the checkpoint's RAM file is never written: clones map it private", async () => {
    const ram = join(checkpoint.info.dir, 'ram.bin');
    const before = await sha256File(ram);
    const c = await checkpoint.boot();
    // the clone writes to much of its memory
    await c.exec(['sh', '-c', 'head -c 200000000 /dev/urandom > /dev/shm/fill && sync']);
    await c.dispose();
    expect(await sha256File(ram)).toBe(before);
  });

  it('the files go when the checkpoint and every clone are disposed, not before', async () => {
    const second = await source.checkpoint();
    const clone = await second.boot();
    await second.dispose();
    expect(existsSync(second.info.dir)).toBe(true); // a clone still runs on its RAM and disk layer
    expect((await clone.exec(['cat', '/root/state'])).stdout).toBe('setup-done\n');
    await expect(second.boot()).rejects.toMatchObject({ code: 'GUEST_DISPOSED' });
    await expect(checkpoint.boot({ hostname: 'bad_name!' })).rejects.toMatchObject({ code: 'INVALID_OPTION' });
    await clone.dispose();
    expect(existsSync(second.info.dir)).toBe(false);
  });

  it('two checkpoints of one guest asked for at once are taken one after the other, and both clone right', async () => {
    const [one, two] = await Promise.all([source.checkpoint(), source.checkpoint()]);
    // and the source runs on after both (a `cont` sent too early used to leave it paused)
    expect((await source.exec(['cat', '/root/later'])).stdout).toBe('only-source\n');
    for (const ck of [one, two]) {
      const vm = await ck.boot();
      expect((await vm.exec(['sh', '-c', 'cat /root/state /root/later'])).stdout).toBe('setup-done\nonly-source\n');
      await vm.dispose();
      await ck.dispose();
    }
  });

  it('a checkpoint of a clone works too (layers stack), and nothing is left after disposal', async () => {
    const nested = await clones[1]!.checkpoint();
    const grandchild = await nested.boot();
    expect((await grandchild.exec(['sh', '-c', 'cat /root/state; cat /root/mark 2>/dev/null || echo none'])).stdout).toBe('setup-done\nnone\n');
    await grandchild.dispose();
    await nested.dispose();
    for (const vm of clones.splice(0)) await vm.dispose();
    await checkpoint.dispose();
    await source.dispose();
    expect(guestDirs()).toEqual([]);
  });
});
