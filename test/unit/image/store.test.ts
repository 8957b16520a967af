/** The image cache's list, rm and prune, over images pulled from a local publisher. */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveImage } from '../../../src/image/resolve.js';
import { choosePrunable, listCached, pruneCached, removeCached } from '../../../src/image/store.js';
import { useTestCatalog } from '../fixtures/test-catalog.js';

const _testCatalog = useTestCatalog();

describe('list, rm, prune', () => {
  it('lists pulled images, removes by name, prunes by age and by size', async () => {
    await resolveImage('testos-1');
    await resolveImage('testos-2');
    expect((await listCached()).map((c) => c.name)).toEqual(['testos-1', 'testos-2']);
    expect(await removeCached('testos-1')).toBe(true);
    expect(await removeCached('testos-1')).toBe(false);
    expect((await listCached()).map((c) => c.name)).toEqual(['testos-2']);
    expect(await pruneCached({ olderThanMs: 60_000 })).toEqual([]);
    expect((await pruneCached({ maxBytes: 1000 })).map((c) => c.name)).toEqual(['testos-2']);
    expect(readdirSync(join(process.env.KVMTEST_CACHE!, 'blobs', 'sha256')).filter((f) => !f.endsWith('.lock'))).toEqual([]);
  });

  it('choosePrunable: unused too long first, then least recently used beyond the size cap', () => {
    const day = 86_400_000;
    const now = Date.parse('2026-11-23T00:00:00Z');
    const image = (name: string, daysAgo: number, size: number) => ({ name, usedAt: new Date(now - daysAgo * day).toISOString(), size });
    const images = [image('a', 40, 10), image('b', 1, 10), image('c', 10, 10), image('d', 2, 10)];
    expect(choosePrunable(images, { olderThanMs: 30 * day, now }).map((i) => i.name)).toEqual(['a']);
    expect(choosePrunable(images, { maxBytes: 20, now }).map((i) => i.name)).toEqual(['a', 'c']);
    expect(choosePrunable(images, { olderThanMs: 5 * day, maxBytes: 10, now }).map((i) => i.name)).toEqual(['a', 'c', 'd']);
  });
});
