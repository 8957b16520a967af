import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { describe, expect, it } from 'vitest';
import type { SnapshotEntry } from '../../../src/snapshot/list.js';
import { pruneReason, pruneSnapshots, SNAPSHOT_MAX_AGE_MS } from '../../../src/snapshot/prune.js';
import { snapshotsRoot } from '../../../src/snapshot/store.js';
import { useCacheHome } from '../fixtures/cache-home.js';
import { fakeEntry } from '../fixtures/snapshots.js';

const home = useCacheHome({ prefix: 'kvmtest-prune-' });

const left = () => readdirSync(snapshotsRoot()).sort();
const HOUR = 3_600_000;

async function holdLock(dir: string): Promise<() => Promise<void>> {
  return lockfile.lock(dir, { realpath: false, lockfilePath: `${dir}.lock`, stale: 30_000 });
}

describe('pruneReason', () => {
  const entry = (over: Partial<SnapshotEntry>): SnapshotEntry => ({ key: 'k', kind: 'image', lastUsedMs: 0, bytes: 1, status: 'ready', locked: false, ...over });
  const now = 10 * SNAPSHOT_MAX_AGE_MS;

  it('incomplete entries go; ready ones go when unused longer than the limit (7 days unless given)', () => {
    expect(pruneReason(entry({ status: 'incomplete', lastUsedMs: now }), {}, now)).toBe('incomplete');
    expect(pruneReason(entry({ lastUsedMs: now - SNAPSHOT_MAX_AGE_MS + 1 }), {}, now)).toBeUndefined();
    expect(pruneReason(entry({ lastUsedMs: now - SNAPSHOT_MAX_AGE_MS - 1 }), {}, now)).toBe('unused');
    expect(pruneReason(entry({ lastUsedMs: now - 2 * HOUR }), { olderThanMs: HOUR }, now)).toBe('unused');
    expect(pruneReason(entry({ lastUsedMs: now }), { all: true }, now)).toBe('all');
  });

  it("a builder's lock and keep win over everything, --all included", () => {
    expect(pruneReason(entry({ status: 'building', locked: true }), { all: true }, now)).toBeUndefined();
    expect(pruneReason(entry({ status: 'incomplete', key: 'mine' }), { all: true, keep: 'mine' }, now)).toBeUndefined();
  });
});

describe('pruneSnapshots', () => {
  it('removes the old-format, the half-written and the unused; keeps the ready, the kept and what a builder holds; says what it freed', async () => {
    fakeEntry('fresh');
    fakeEntry('layer', { layer: { parent: 'fresh', label: 'setup', setupMs: 1 } });
    fakeEntry('old0', { oldFormat: true });
    fakeEntry('half', { halfWritten: true });
    fakeEntry('stale', { ageDays: 8 });
    fakeEntry('making', { halfWritten: true });
    fakeEntry('kept', { halfWritten: true });
    const release = await holdLock(join(snapshotsRoot(), 'making'));
    try {
      const removed = await pruneSnapshots({ keep: 'kept' });
      expect(removed.map((r) => [r.key, r.why]).sort()).toEqual([
        ['half', 'incomplete'],
        ['old0', 'incomplete'],
        ['stale', 'unused'],
      ]);
      for (const r of removed) expect(r.bytes).toBeGreaterThan(0);
      expect(removed.find((r) => r.key === 'old0')!.entry.reason).toBe('older format (whole RAM, no ram.bin)');
      expect(left()).toEqual(['fresh', 'kept', 'layer', 'making', 'making.lock']);
    } finally {
      await release();
    }
  });

  it('olderThanMs sets the limit; all removes every entry no builder holds', async () => {
    fakeEntry('recent');
    fakeEntry('twoHours');
    const when = new Date(Date.now() - 2 * HOUR);
    utimesSync(join(snapshotsRoot(), 'twoHours', 'meta.json'), when, when);
    expect((await pruneSnapshots({ olderThanMs: HOUR })).map((r) => r.key)).toEqual(['twoHours']);
    fakeEntry('busy');
    const release = await holdLock(join(snapshotsRoot(), 'busy'));
    try {
      expect((await pruneSnapshots({ all: true })).map((r) => r.key)).toEqual(['recent']);
      expect(left()).toEqual(['busy', 'busy.lock']);
    } finally {
      await release();
    }
  });

  it('nothing to do without a cache, and none is made', async () => {
    await expect(pruneSnapshots({ all: true })).resolves.toEqual([]);
    expect(existsSync(home.cache)).toBe(false);
  });

  it('a symlink planted in snapshots/ is removed itself: its target directory and file survive', async () => {
    const target = mkdtempSync(join(home.work, 'target-'));
    writeFileSync(join(target, 'precious.txt'), 'keep me\n');
    fakeEntry('real', { oldFormat: true });
    symlinkSync(target, join(snapshotsRoot(), 'planted'));
    symlinkSync(join(target, 'precious.txt'), join(snapshotsRoot(), 'planted-file'));
    const removed = await pruneSnapshots({ all: true });
    expect(removed.map((r) => r.key).sort()).toEqual(['planted', 'planted-file', 'real']);
    expect(left()).toEqual([]);
    expect(readFileSync(join(target, 'precious.txt'), 'utf8')).toBe('keep me\n');
  });

  it('a symlink inside an entry is unlinked with it, never followed', async () => {
    const target = mkdtempSync(join(home.work, 'target-'));
    writeFileSync(join(target, 'precious.txt'), 'keep me\n');
    const dir = fakeEntry('inner');
    for (const file of ['disk.qcow2', 'seed.iso']) rmSync(join(dir, file));
    symlinkSync(target, join(dir, 'disk.qcow2'));
    symlinkSync(join(target, 'precious.txt'), join(dir, 'seed.iso'));
    expect((await pruneSnapshots()).map((r) => [r.key, r.entry.reason])).toEqual([['inner', 'holds a symlink (never followed)']]);
    expect(readFileSync(join(target, 'precious.txt'), 'utf8')).toBe('keep me\n');
    expect(readdirSync(target)).toEqual(['precious.txt']);
  });

  it("lock directories named '.lock', '..lock' or '...lock' never make it remove snapshots/ or the cache", async () => {
    fakeEntry('fresh');
    for (const name of ['.lock', '..lock', '...lock']) mkdirSync(join(snapshotsRoot(), name));
    writeFileSync(join(home.cache, 'other.txt'), 'cache file\n');
    await expect(pruneSnapshots({ all: true })).resolves.toMatchObject([{ key: 'fresh' }]);
    expect(readFileSync(join(home.cache, 'other.txt'), 'utf8')).toBe('cache file\n');
    expect(left()).toEqual(['...lock', '..lock', '.lock']);
  });

  it("a dead builder's stale lock is cleared; a live builder's stays", async () => {
    mkdirSync(join(snapshotsRoot(), 'gone.lock'), { recursive: true });
    const long = new Date(Date.now() - 60_000);
    utimesSync(join(snapshotsRoot(), 'gone.lock'), long, long);
    const release = await holdLock(join(snapshotsRoot(), 'live'));
    try {
      await expect(pruneSnapshots()).resolves.toEqual([]);
      expect(left()).toEqual(['live.lock']);
    } finally {
      await release();
    }
  });
});
