import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { describe, expect, it } from 'vitest';
import { listSnapshots, readSnapshotEntry } from '../../../src/snapshot/list.js';
import { snapshotsRoot } from '../../../src/snapshot/store.js';
import { useCacheHome } from '../fixtures/cache-home.js';
import { fakeEntry, GiB } from '../fixtures/snapshots.js';

const home = useCacheHome({ prefix: 'kvmtest-list-' });

/** What du would count: the allocated blocks of the entry's files. */
function allocated(dir: string): number {
  return readdirSync(dir).reduce((sum, f) => sum + lstatSync(join(dir, f)).blocks * 512, 0);
}

describe('listSnapshots', () => {
  it('is empty when there is no cache, and makes none', async () => {
    await expect(listSnapshots()).resolves.toEqual([]);
    expect(existsSync(home.cache)).toBe(false);
  });

  it('a complete snapshot is ready; its size is what is allocated (ram.bin is sparse), not its length', async () => {
    const dir = fakeEntry('aaaa1111bbbb2222cccc3333', { ramData: 1 << 20 });
    const [entry] = await listSnapshots();
    expect(entry).toMatchObject({ key: 'aaaa1111bbbb2222cccc3333', kind: 'image', status: 'ready', locked: false, baseImage: '/cache/images/debian-12-0123456789abcdef/disk.qcow2' });
    expect(entry!.reason).toBeUndefined();
    expect(statSync(join(dir, 'ram.bin')).size).toBe(GiB);
    expect(entry!.bytes).toBe(allocated(dir));
    expect(entry!.bytes).toBeGreaterThanOrEqual(1 << 20);
    expect(entry!.bytes).toBeLessThan(64 << 20);
    expect(entry!.lastUsedMs).toBe(statSync(join(dir, 'meta.json')).mtimeMs);
  });

  it("an older kvmtest's whole-RAM snapshot (no ram.bin) and a half-written one (no meta.json) are incomplete, and say why", async () => {
    fakeEntry('old0', { oldFormat: true, ageDays: 1 });
    const half = fakeEntry('half', { halfWritten: true, ageDays: 2 });
    const entries = await listSnapshots();
    expect(entries.map((e) => [e.key, e.status, e.reason])).toEqual([
      ['old0', 'incomplete', 'older format (whole RAM, no ram.bin)'],
      ['half', 'incomplete', 'half-written (no meta.json)'],
    ]);
    // no meta.json: last used is the directory's own time
    expect(entries[1]!.lastUsedMs).toBe(statSync(half).mtimeMs);
    expect(entries[1]!.baseImage).toBeUndefined();
  });

  it('a snapshot whose files have other sizes than meta.json records is incomplete', async () => {
    const dir = fakeEntry('short');
    writeFileSync(join(dir, 'state.bin'), 'cut');
    await expect(readSnapshotEntry('short')).resolves.toMatchObject({ status: 'incomplete', reason: 'state.bin is 3 bytes, meta.json says 4096' });
  });

  it("one whose lock a builder holds is 'building', whatever its files say", async () => {
    const dir = fakeEntry('busy', { halfWritten: true });
    const release = await lockfile.lock(dir, { realpath: false, lockfilePath: `${dir}.lock`, stale: 30_000 });
    try {
      const entries = await listSnapshots();
      expect(entries.map((e) => e.key)).toEqual(['busy']); // the .lock directory is not an entry
      expect(entries[0]).toMatchObject({ status: 'building', locked: true });
    } finally {
      await release();
    }
    await expect(readSnapshotEntry('busy')).resolves.toMatchObject({ status: 'incomplete', locked: false });
  });

  it("a setup layer (meta.json's layer) is kind 'setup' with its label; a layer field of the wrong shape is ignored", async () => {
    fakeEntry('layer1', { layer: { parent: 'aaaa1111', label: 'npm ci', setupMs: 5000 } });
    const dir = fakeEntry('layer2');
    writeFileSync(join(dir, 'meta.json'), JSON.stringify({ key: 'layer2', stateBytes: 4096, ramBytes: GiB, layer: { parent: 1 } }));
    const byKey = Object.fromEntries((await listSnapshots()).map((e) => [e.key, e]));
    expect(byKey.layer1).toMatchObject({ kind: 'setup', status: 'ready', layer: { parent: 'aaaa1111', label: 'npm ci', setupMs: 5000 } });
    expect(byKey.layer2).toMatchObject({ kind: 'image', status: 'ready' });
    expect(byKey.layer2!.layer).toBeUndefined();
  });

  it('most recently used first', async () => {
    fakeEntry('week', { ageDays: 7 });
    fakeEntry('now');
    fakeEntry('day', { ageDays: 1 });
    expect((await listSnapshots()).map((e) => e.key)).toEqual(['now', 'day', 'week']);
  });

  it('a link planted in snapshots/ or in an entry is reported, never followed (its target is neither read nor counted)', async () => {
    const target = mkdtempSync(join(home.work, 'target-'));
    writeFileSync(join(target, 'meta.json'), JSON.stringify({ key: 'x', stateBytes: 1, ramBytes: 1, baseImage: '/etc' }));
    writeFileSync(join(target, 'big'), Buffer.alloc(1 << 20, 1));
    mkdirSync(snapshotsRoot(), { recursive: true, mode: 0o700 });
    symlinkSync(target, join(snapshotsRoot(), 'planted'));
    const dir = fakeEntry('inner');
    rmSync(join(dir, 'disk.qcow2'));
    symlinkSync(join(target, 'big'), join(dir, 'disk.qcow2'));
    const byKey = Object.fromEntries((await listSnapshots()).map((e) => [e.key, e]));
    expect(byKey.planted).toMatchObject({ status: 'incomplete', reason: 'a symlink (never followed)', bytes: 0 });
    expect(byKey.planted!.baseImage).toBeUndefined();
    expect(byKey.inner).toMatchObject({ status: 'incomplete', reason: 'holds a symlink (never followed)' });
    expect(byKey.inner!.bytes).toBeLessThan(1 << 20);
  });

  it('a cache another user could write to is refused (CACHE_UNSAFE), as every use refuses it', async () => {
    fakeEntry('k');
    chmodSync(snapshotsRoot(), 0o777);
    await expect(listSnapshots()).rejects.toMatchObject({ code: 'CACHE_UNSAFE' });
  });
});
