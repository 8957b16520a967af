/**
 * One guest pool for a whole vitest run (globalSetup kvmtest/vitest/pool-owner): two test files in two
 * worker processes at once take their fresh guests from the pool in vitest's main process, which
 * made every one of them; a worker killed with SIGKILL inside a test gets its guest stopped while the
 * run goes on; nothing is left after the run.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { goneWithin, guestDirs } from './helpers.js';

const vitest = join(__dirname, '../../node_modules/.bin/vitest');
const fixture = join(__dirname, 'fixtures/vitest-shared');

interface Held {
  file: string;
  test: number;
  worker: number;
  owner: number;
  pid: number;
  dir: string;
  before: string;
  victimPid?: number;
  victimGone?: boolean;
  victimDirGone?: boolean;
}

async function runFixture(env: Record<string, string>) {
  const held = join(tmpdir(), `kvmtest-shared-${process.pid}-${Date.now()}.jsonl`);
  const child = execa(vitest, ['run', '--root', fixture, '--config', join(fixture, 'vitest.config.mjs')], { reject: false, env: { ...env, KVMTEST_HELD: held, CI: 'true' }, all: true });
  const result = await child;
  const lines = existsSync(held)
    ? readFileSync(held, 'utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Held)
    : [];
  rmSync(held, { force: true });
  return { result, lines, mainPid: child.pid };
}

describe('a shared guest pool for a vitest run (kvmtest/vitest/pool-owner)', () => {
  it("two files in two worker processes get fresh guests that vitest's main process made, and nothing is left after", async () => {
    const { result, lines, mainPid } = await runFixture({});
    expect(result.exitCode, result.all).toBe(0);
    expect(lines).toHaveLength(4);
    expect(lines.every((l) => l.before === 'absent')).toBe(true);
    // two workers, one owner: the run's main process, which is neither worker
    const workers = new Set(lines.map((l) => l.worker));
    expect(workers.size).toBe(2);
    expect(new Set(lines.map((l) => l.owner))).toEqual(new Set([mainPid]));
    expect(workers.has(mainPid!)).toBe(false);
    // four guests, each its own QEMU, all gone with their dirs
    expect(new Set(lines.map((l) => l.pid)).size).toBe(4);
    for (const { pid, dir } of lines) {
      expect(await goneWithin(pid, 5000)).toBe(true);
      expect(existsSync(dir)).toBe(false);
    }
    expect(guestDirs()).toEqual([]);
  });

  it("SIGKILL of a worker inside a test: the owner stops that worker's guest while the run goes on; the other file passes", async () => {
    const { result, lines } = await runFixture({ KVMTEST_KILL_WORKER: '1' });
    expect(result.exitCode).not.toBe(0);
    expect(result.all).toMatch(/Worker exited unexpectedly/);
    const saw = lines.find((l) => l.file === 'b-saw');
    expect(saw, result.all).toBeDefined();
    expect(saw).toMatchObject({ victimGone: true, victimDirGone: true });
    expect(lines.filter((l) => l.file === 'b' && l.before === 'absent')).toHaveLength(2);
    for (const { pid } of lines.filter((l) => l.pid)) expect(await goneWithin(pid, 5000)).toBe(true);
    expect(guestDirs()).toEqual([]);
  });
});
