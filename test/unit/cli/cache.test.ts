import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cacheList, cachePrune, formatAgo, formatCacheList, formatPruned, imageLabel } from '../../../src/cli/cache.js';
import type { SnapshotEntry } from '../../../src/snapshot/list.js';
import { useCacheHome } from '../fixtures/cache-home.js';
import { fakeEntry } from '../fixtures/snapshots.js';

const MiB = 2 ** 20;
const HOUR = 3_600_000;
const now = Date.parse('2026-12-01T12:00:00Z');

const entry = (over: Partial<SnapshotEntry>): SnapshotEntry => ({
  key: '0123456789abcdef01234567',
  kind: 'image',
  baseImage: '/c/images/debian-12-29c8296644527941/disk.qcow2',
  lastUsedMs: now - 3 * HOUR,
  bytes: 270 * MiB,
  status: 'ready',
  locked: false,
  ...over,
});

describe('formatCacheList', () => {
  it('a table (key cut to 12, image by name, allocated MiB, relative last use, status) and a total line', () => {
    const text = formatCacheList(
      [
        entry({}),
        entry({
          key: 'fedcba9876543210fedcba98',
          baseImage: '/c/images/debian-11-cdcfb39d5edd33b4/disk.qcow2',
          bytes: 1200 * MiB,
          lastUsedMs: now - 9 * 86_400_000,
          status: 'incomplete',
          reason: 'older format (whole RAM, no ram.bin)',
        }),
        entry({ key: 'half', baseImage: undefined, bytes: 3 * MiB, lastUsedMs: now - 30_000, status: 'building', locked: true }),
      ],
      { now },
    );
    expect(text).toBe(
      [
        'KEY           KIND   IMAGE          SIZE  LAST USED  STATUS',
        '0123456789ab  image  debian-12   270 MiB  3 h ago    ready',
        'fedcba987654  image  debian-11  1200 MiB  9 d ago    incomplete: older format (whole RAM, no ram.bin)',
        'half          image  -             3 MiB  30 s ago   in use by a builder',
        'total 1473 MiB in 3 entries (1 ready); kvmtest cache prune removes the incomplete and the unused',
      ].join('\n'),
    );
  });

  it('setup layers show their label (sanitised); an empty cache says where it looked', () => {
    const text = formatCacheList([entry({ kind: 'setup', layer: { parent: 'p', label: 'npm ci\x1b[31m', setupMs: 1 } }), entry({ key: 'b' })], { now });
    expect(text.split('\n')[0]).toMatch(/STATUS {2}LABEL$/);
    expect(text.split('\n')[1]).toMatch(/^0123456789ab {2}setup .* ready +npm ci$/);
    expect(formatCacheList([], { now, root: '/c/snapshots' })).toBe('no snapshots in /c/snapshots');
  });
});

describe('formatPruned', () => {
  it('one line per removed entry with why, then the bytes freed', () => {
    const text = formatPruned(
      [
        { key: 'aaaaaaaaaaaaaaaa', bytes: 255 * MiB, why: 'incomplete', entry: entry({ status: 'incomplete', reason: 'older format (whole RAM, no ram.bin)' }) },
        { key: 'bbbbbbbbbbbbbbbb', bytes: 10 * MiB, why: 'unused', entry: entry({ lastUsedMs: now - 8 * 86_400_000 }) },
        { key: 'cccccccccccccccc', bytes: 1 * MiB, why: 'all', entry: entry({ kind: 'setup', layer: { parent: 'p', label: 'apt install', setupMs: 1 } }) },
        { key: 'dddddddddddddddd', bytes: 0, why: 'incomplete', entry: entry({ baseImage: undefined, bytes: 0, status: 'incomplete', reason: 'a symlink (never followed)' }) },
      ],
      { now },
    );
    expect(text).toBe(
      [
        'removed aaaaaaaaaaaa (image, debian-12, 255 MiB): incomplete: older format (whole RAM, no ram.bin)',
        'removed bbbbbbbbbbbb (image, debian-12, 10 MiB): unused for 8 d',
        'removed cccccccccccc (setup "apt install", debian-12, 1 MiB): all',
        'removed dddddddddddd (image, -, 0 MiB): incomplete: a symlink (never followed)',
        'freed 266 MiB',
      ].join('\n'),
    );
    expect(formatPruned([], { now })).toBe('nothing to prune');
  });
});

describe('imageLabel and formatAgo', () => {
  it("names a base image by its pulled name, a built image's folder without the recipe key, else the file", () => {
    expect(imageLabel('/c/blobs/sha512/abc', new Map([['/c/blobs/sha512/abc', 'debian-12']]))).toBe('debian-12');
    expect(imageLabel('/c/images/debian-13-481154a205feeb83/disk.qcow2')).toBe('debian-13');
    expect(imageLabel('/home/me/vm/ubuntu.qcow2')).toBe('ubuntu.qcow2');
    expect(imageLabel(undefined)).toBe('-');
    expect(imageLabel(`/x/${'a'.repeat(60)}`)).toBe(`${'a'.repeat(39)}…`);
  });

  it('relative times', () => {
    expect([0, 12_000, 5 * 60_000, 3 * HOUR + 59 * 60_000, 9 * 86_400_000, -5].map(formatAgo)).toEqual(['just now', '12 s ago', '5 min ago', '3 h ago', '9 d ago', 'just now']);
  });
});

describe('kvmtest cache list / prune on a cache', () => {
  const home = useCacheHome({ prefix: 'kvmtest-cli-cache-' });

  it('lists, then prunes the old-format and the unused (--older-than 2d), then everything (--all)', async () => {
    fakeEntry('aaaa1111bbbb2222', { ramData: MiB });
    fakeEntry('cccc3333dddd4444', { oldFormat: true });
    fakeEntry('eeee5555ffff6666', { ageDays: 3 });
    const list = await cacheList();
    expect(list).toMatch(/^aaaa1111bbbb {2}image {2}debian-12 .* ready$/m);
    expect(list).toMatch(/^cccc3333dddd .* incomplete: older format \(whole RAM, no ram\.bin\)$/m);
    expect(list).toMatch(/^eeee5555ffff .* <1 MiB +3 d ago +ready$/m);
    expect(list).toMatch(/^total \d+ MiB in 3 entries \(2 ready\)/m);
    const pruned = await cachePrune({ olderThan: '2d' });
    expect(pruned).toMatch(/^removed cccc3333dddd .*: incomplete: older format/m);
    expect(pruned).toMatch(/^removed eeee5555ffff .*: unused for 3 d$/m);
    expect(pruned).toMatch(/^freed (<1|\d+) MiB$/m);
    expect(await cachePrune({})).toBe('nothing to prune');
    expect(await cachePrune({ all: true })).toMatch(/^removed aaaa1111bbbb .*: all\nfreed [1-9]\d* MiB$/);
    expect(await cacheList()).toMatch(/^no snapshots in /);
  });

  it('on a machine without a cache, says so and makes none', async () => {
    expect(await cacheList()).toBe(`no snapshots in ${join(home.cache, 'snapshots')}`);
    expect(await cachePrune({})).toBe('nothing to prune');
    expect(existsSync(home.cache)).toBe(false);
  });

  it('--all with --older-than, or an age that is not one, is INVALID_OPTION; nothing is removed', async () => {
    fakeEntry('k', { oldFormat: true });
    await expect(cachePrune({ all: true, olderThan: '7d' })).rejects.toMatchObject({ code: 'INVALID_OPTION' });
    await expect(cachePrune({ olderThan: 'soon' })).rejects.toMatchObject({ code: 'INVALID_OPTION' });
    expect(existsSync(join(home.cache, 'snapshots', 'k'))).toBe(true);
  });
});
