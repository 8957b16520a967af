import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeSource } from '../../../src/attach/push.js';
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

  it('a root that is a symbolic link is followed (as the streamed push and mke2fs -d follow it); links inside it are counted, not followed', async () => {
    const dir = roots.makeRoot();
    const tree = join(dir, 'tree');
    mkdirSync(join(tree, 'sub'), { recursive: true });
    writeFileSync(join(tree, 'sub/f'), 'abc');
    const elsewhere = join(dir, 'elsewhere');
    mkdirSync(elsewhere);
    writeFileSync(join(elsewhere, 'big'), Buffer.alloc(10_000));
    symlinkSync(elsewhere, join(tree, 'inner')); // a link to a directory inside the tree: one entry, not walked
    symlinkSync(tree, join(dir, 'root-link'));
    expect(await treeStats(join(dir, 'root-link'))).toEqual({ entries: 4, bytes: 3, blockBytes: 4096 });
    expect(await treeStats(join(dir, 'root-link'))).toEqual(await treeStats(tree));
    // a push source that is a link to a file is that file (its size and mode), by disk as by stream
    writeFileSync(join(dir, 'real'), 'hello', { mode: 0o600 });
    symlinkSync(join(dir, 'real'), join(dir, 'file-link'));
    expect(await describeSource(join(dir, 'file-link'))).toEqual({ kind: 'file', bytes: 5, entries: 1, mode: 0o600 });
  });
});
