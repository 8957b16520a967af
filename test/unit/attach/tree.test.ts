import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { treeStats } from '../../../src/attach/tree.js';
import { makeOddTree } from '../../fixtures/odd-tree.js';
import { useTempRoots } from '../fixtures/temp-roots.js';

describe('treeStats', () => {
  const roots = useTempRoots();
  it('counts every entry (a name that is not UTF-8 too), links not followed, files by apparent size and by blocks', async () => {
    const tree = makeOddTree(join(roots.makeRoot(), 'tree'));
    const stats = await treeStats(tree);
    // root; node_modules, @scope, alpha, package.json, cli.js, beta, index.js, plain, index.js, .bin, .bin/alpha;
    // empty dir, nested empty; 7 files at the top (spaces, newline, café, raw bytes, original, hard link, sparse)
    expect(stats.entries).toBe(21);
    expect(stats.bytes).toBeGreaterThan(64 * 2 ** 20);
    expect(stats.blockBytes % 4096).toBe(0);
  });
});
