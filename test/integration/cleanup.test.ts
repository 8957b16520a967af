/**
 * A guest's holder goes wrong: a vitest test throws (the fixture disposes the guest), the host
 * process gets SIGINT or SIGTERM (its exit hooks clean up) or SIGKILL (QEMU's parent-death signal
 * and the shared out-of-process reaper clean up). Each time QEMU stops and its files go.
 */

import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { cacheDir } from '../../src/host/paths.js';
import { goneWithin, guestDirs, isAlive } from './helpers.js';

async function holdThenSignal(signal: 'SIGINT' | 'SIGTERM' | 'SIGKILL') {
  const child = execa('node', [join(__dirname, 'fixtures/hold-guest.mjs')], { reject: false, stderr: 'inherit' });
  const [line] = await createInterface({ input: child.stdout! })
    [Symbol.asyncIterator]()
    .next()
    .then((r) => [r.value as string]);
  const { pid, dir } = JSON.parse(line!) as { pid: number; dir: string };
  expect(isAlive(pid)).toBe(true);
  expect(existsSync(join(dir, 'disk.qcow2'))).toBe(true);
  child.kill(signal);
  const result = await child;
  return { pid, dir, result };
}

async function goneDirWithin(dir: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (existsSync(dir)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

describe('a test that throws', () => {
  it('an exception inside a vitest test holding a guest: the file fails, and the guest is stopped and removed', async () => {
    const held = join(tmpdir(), `kvmtest-held-${process.pid}.json`);
    const vitest = join(__dirname, '../../node_modules/.bin/vitest');
    const fixture = join(__dirname, 'fixtures/vitest-throw');
    const result = await execa(vitest, ['run', '--root', fixture, '--config', join(fixture, 'vitest.config.mjs')], { reject: false, env: { KVMTEST_HELD: held, CI: 'true' }, all: true });
    expect(result.exitCode).toBe(1);
    expect(result.all).toMatch(/boom inside a test that holds a guest/);
    const { pid, dir } = JSON.parse(readFileSync(held, 'utf8')) as { pid: number; dir: string };
    rmSync(held);
    expect(await goneWithin(pid, 5000)).toBe(true);
    expect(existsSync(dir)).toBe(false);
  });
});

describe('checkpoints', () => {
  it("SIGKILL of a process holding a guest, a checkpoint of it and a clone: both QEMUs stop and every directory goes, the checkpoint's too", async () => {
    const child = execa('node', [join(__dirname, 'fixtures/hold-checkpoint.mjs')], { reject: false, stderr: 'inherit' });
    const [line] = await createInterface({ input: child.stdout! })
      [Symbol.asyncIterator]()
      .next()
      .then((r) => [r.value as string]);
    const { pids, dirs } = JSON.parse(line!) as { pids: number[]; dirs: string[] };
    for (const pid of pids) expect(isAlive(pid)).toBe(true);
    expect(existsSync(join(dirs[2]!, 'ram.bin'))).toBe(true);
    child.kill('SIGKILL');
    expect((await child).signal).toBe('SIGKILL');
    for (const pid of pids) expect(await goneWithin(pid, 10_000)).toBe(true);
    for (const dir of dirs) expect(await goneDirWithin(dir, 10_000)).toBe(true);
  });
});

describe('a fresh guest per test (freshGuestTest and its pool)', () => {
  const vitest = join(__dirname, '../../node_modules/.bin/vitest');
  const fixture = join(__dirname, 'fixtures/vitest-fresh');
  const heldLines = (held: string) =>
    readFileSync(held, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { test: number; pid: number; dir: string });

  it("three tests get three guests, and nothing is left after the run: not the last test's, not the pool's spare", async () => {
    const held = join(tmpdir(), `kvmtest-fresh-${process.pid}.jsonl`);
    const result = await execa(vitest, ['run', '--root', fixture, '--config', join(fixture, 'vitest.config.mjs')], { reject: false, env: { KVMTEST_HELD: held, CI: 'true' }, all: true });
    expect(result.exitCode, result.all).toBe(0);
    const guests = heldLines(held);
    rmSync(held);
    expect(new Set(guests.map((g) => g.pid)).size).toBe(3);
    for (const { pid, dir } of guests) {
      expect(await goneWithin(pid, 5000)).toBe(true);
      expect(existsSync(dir)).toBe(false);
    }
    expect(guestDirs()).toEqual([]);
  });

  it("SIGKILL of the vitest process inside a test: its guest and the pool's spare go within 10 s (the reaper)", async () => {
    const held = join(tmpdir(), `kvmtest-fresh-kill-${process.pid}.jsonl`);
    const tmpBefore = new Set(readdirSync(tmpdir()));
    const child = execa(vitest, ['run', '--root', fixture, '--config', join(fixture, 'vitest.config.mjs')], { reject: false, env: { KVMTEST_HELD: held, KVMTEST_HANG: '1', CI: 'true' } });
    const deadline = Date.now() + 240_000;
    while (!(existsSync(held) && heldLines(held).some((g) => g.test === 2)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    // the pool has restored the spare for test 3 by now, or is restoring it
    await new Promise((r) => setTimeout(r, 1500));
    const before = guestDirs();
    expect(before.length).toBeGreaterThanOrEqual(1);
    // every process of the run: vitest and its worker
    const pids = (await execa('pgrep', ['-f', '-P', String(child.pid), '.'], { reject: false })).stdout.split('\n').filter(Boolean).map(Number);
    for (const pid of [...pids, child.pid!]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await child;
    const guests = heldLines(held);
    rmSync(held);
    for (const { pid } of guests) expect(await goneWithin(pid, 10_000)).toBe(true);
    for (const dir of before) expect(await goneDirWithin(join(tmpdir(), dir), 10_000)).toBe(true);
    // what the killed vitest itself left in the run's temp dir is vitest's, not kvmtest's: tidied here
    for (const name of readdirSync(tmpdir())) if (!tmpBefore.has(name) && !name.startsWith('kvmtest')) rmSync(join(tmpdir(), name), { recursive: true, force: true });
    expect(guestDirs()).toEqual([]);
  });
});

describe('host process signals', () => {
  it.concurrent.each(['SIGINT', 'SIGTERM'] as const)('%s to the host process stops the guest and removes its files', async (signal) => {
    const { pid, dir, result } = await holdThenSignal(signal);
    expect(result.signal).toBe(signal);
    expect(await goneWithin(pid, 5000)).toBe(true);
    expect(existsSync(dir)).toBe(false);
  });

  it('SIGKILL of two host processes at once: both guests stop and their files go within 10 s, by one shared reaper', async () => {
    const held = await Promise.all([holdThenSignal('SIGKILL'), holdThenSignal('SIGKILL')]);
    for (const { pid, dir, result } of held) {
      expect(result.signal).toBe('SIGKILL');
      expect(await goneWithin(pid, 10_000)).toBe(true);
      expect(await goneDirWithin(dir, 10_000)).toBe(true);
    }
    // one reaper serves every process using this cache, and it says what it reaped
    const reapers = (await execa('pgrep', ['-f', `reaper/main.js ${cacheDir()}$`], { reject: false })).stdout.split('\n').filter(Boolean);
    expect(reapers).toHaveLength(1);
    const log = readFileSync(join(cacheDir(), 'reaper.log'), 'utf8');
    for (const { dir } of held) expect(log).toMatch(new RegExp(`client gone: reaping kvmtest-\\w+ \\(pid \\d+, ${dir}\\)`));
  });
});
