import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runDaemon } from '../../../src/reaper/daemon.js';

const temp = realpathSync(tmpdir());
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  vi.restoreAllMocks();
});

/** A fresh temp root (0700, ours) holding kvmtest-* dirs, removed after the test. */
function makeRoot(): string {
  const root = mkdtempSync(join(temp, 'kvmtest-unit-root-'));
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  return root;
}

const waitFor = async (check: () => boolean, ms = 5000) => {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return check();
};

describe('registry', () => {
  it("a guest's directory is registered with the reaper before its QEMU starts; the pid follows", async () => {
    const cache = makeRoot();
    vi.stubEnv('KVMTEST_CACHE', cache);
    const daemon = (await runDaemon({ cache, idleMs: 60_000 }))!;
    cleanups.push(() => daemon.close());
    const { track } = await import('../../../src/machine/registry.js');
    const dir = mkdtempSync(join(temp, 'kvmtest-unit-guest-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const tracked = track('kvmtest-unit1', dir);
    await tracked.registered;
    // what boot() awaits before it starts QEMU: the reaper already holds the directory
    expect(await waitFor(() => daemon.targets().some((t) => t.dir === dir))).toBe(true);
    expect(daemon.targets().find((t) => t.dir === dir)).toEqual({ name: 'kvmtest-unit1', dir });
    tracked.started(4242);
    expect(await waitFor(() => daemon.targets().some((t) => t.dir === dir && t.pid === 4242))).toBe(true);
    tracked.untrack();
    expect(await waitFor(() => !daemon.targets().some((t) => t.dir === dir))).toBe(true);
    vi.unstubAllEnvs();
  });
});
