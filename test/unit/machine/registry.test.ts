import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { runDaemon } from '../../../src/reaper/daemon.js';
import { temp, useTempRoots } from '../fixtures/temp-roots.js';
import { waitFor } from '../fixtures/wait-for.js';

const { cleanups, makeRoot } = useTempRoots();

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
