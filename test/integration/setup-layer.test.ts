/**
 * Cached setup layers: boot({ setup }) runs the setup once and captures it on the warm snapshot;
 * another process restores straight into the state after it (the stamp it wrote is the same), a
 * change to the pushed content makes a new layer, and a failing setup is SETUP_FAILED with its
 * output and is not cached.
 */
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { boot, runMatrix } from '../../src/index.js';
import { listSnapshots } from '../../src/snapshot/list.js';
import { guestDirs } from './helpers.js';

const fixture = join(__dirname, 'fixtures/setup-layer.mjs');
// the fixture's setup command, byte for byte: the same step is the same layer
const SETUP_RUN = 'date +%s%N > /opt/stamp; cat /opt/app/version > /opt/seen; sync';
const work = mkdtempSync(join(tmpdir(), 'kvmtest-test-'));
const app = join(work, 'app');
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function bootInAnotherProcess(): Promise<{ stamp: string; seen: string; snapshot: string; bootMs: number }> {
  const result = await execa('node', [fixture, app], { reject: false, env: { CI: 'true' } });
  expect(result.exitCode, result.stderr).toBe(0);
  return JSON.parse(result.stdout.trim().split('\n').at(-1)!);
}

describe('boot({ setup }): cached setup layers', () => {
  it('a second process reuses the layer without running the setup again; new content makes a new layer', async () => {
    // a unique version: a layer from an earlier run of this test is never found
    const version = `v1-${Date.now()}`;
    rmSync(app, { recursive: true, force: true });
    mkdirSync(app);
    writeFileSync(join(app, 'version'), version);
    const first = await bootInAnotherProcess();
    expect(first.seen).toBe(version);
    const second = await bootInAnotherProcess();
    expect(second.stamp).toBe(first.stamp);
    expect(second.snapshot).toBe(first.snapshot);
    console.log(`setup layer reused by a second process: restored in ${second.bootMs} ms (first: ${first.bootMs} ms, setup included)`);
    // the same bytes with a new mtime: the same layer (keyed by content)
    utimesSync(join(app, 'version'), new Date(), new Date(Date.now() + 5000));
    expect((await bootInAnotherProcess()).stamp).toBe(first.stamp);
    writeFileSync(join(app, 'version'), `${version}-changed`);
    const changed = await bootInAnotherProcess();
    expect(changed.seen).toBe(`${version}-changed`);
    expect(changed.stamp).not.toBe(first.stamp);
    expect(changed.snapshot).not.toBe(first.snapshot);
    const layers = (await listSnapshots()).filter((e) => e.kind === 'setup' && [first.snapshot, changed.snapshot].includes(e.key));
    expect(layers.map((l) => l.status).sort()).toEqual(['ready', 'ready']);
    // kvmtest cache list shows them: kind, status and the setup's command
    const list = await execa('node', [join(__dirname, '../../dist/cli/main.js'), 'cache', 'list'], { env: { CI: 'true' } });
    const row = list.stdout.split('\n').find((l) => l.startsWith(first.snapshot.slice(0, 12)));
    expect(row).toMatch(/ setup .* ready .*date \+%s%N > \/opt\/stamp/);
    expect(guestDirs()).toEqual([]);

    // a matrix with the same setup (its push source relative to projectDir) starts its cell from that very layer
    const out = join(work, 'matrix-out');
    const report = await runMatrix({
      capsule: 'never',
      images: ['debian-12'],
      boot: { boot: 'kernel' },
      projectDir: work,
      setup: { push: { app: '/opt/app' }, run: SETUP_RUN },
      run: 'cat /opt/stamp /opt/seen',
      outDir: out,
    });
    expect(report.cells[0]?.status, JSON.stringify(report.cells[0]?.error)).toBe('passed');
    expect(report.cells[0]?.stdoutTail.trim().split('\n')).toEqual([changed.stamp, `${version}-changed`]);
  });

  it('a failing setup is SETUP_FAILED with its output, and is not cached', async () => {
    const marker = `fail-${Date.now()}`;
    const setup = { run: `echo ${marker}-out; echo ${marker}-err >&2; exit 7` };
    const attempt = () => boot({ image: 'debian-12', boot: 'kernel', setup });
    const error = await attempt().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'SETUP_FAILED' });
    expect((error as Error).message).toMatch(/exited with 7/);
    expect((error as Error).message).toContain(`${marker}-out`);
    expect((error as Error).message).toContain(`${marker}-err`);
    const layers = await listSnapshots();
    expect(layers.filter((e) => e.layer?.label.includes(marker))).toEqual([]);
    // nothing cached: the next attempt runs it again, and fails again the same way
    await expect(attempt()).rejects.toMatchObject({ code: 'SETUP_FAILED' });
    expect(guestDirs()).toEqual([]);
  });

  it("a setup that floods its output: shown and kept bounded (the error's tail is at most 8,000 characters), still SETUP_FAILED", async () => {
    const setup = { run: `head -c 50000000 /dev/zero | tr '\\0' x; echo; seq 1 100000; echo flood-${Date.now()}; exit 3` };
    const error = await boot({ image: 'debian-12', boot: 'kernel', setup }).then(
      () => undefined,
      (e: unknown) => e as Error & { code: string },
    );
    expect(error?.code).toBe('SETUP_FAILED');
    expect(error!.message).toMatch(/exited with 3[\s\S]*100000\nflood-\d+$/);
    expect(error!.message.length).toBeLessThan(8_500);
    expect(guestDirs()).toEqual([]);
  });
});
