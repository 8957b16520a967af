import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { imageGeometry, makeTreeImage } from '../../../src/attach/image.js';
import { treeStats } from '../../../src/attach/tree.js';
import { makeOddTree } from '../../fixtures/odd-tree.js';
import { useTempRoots } from '../fixtures/temp-roots.js';

const MKE2FS = ['/usr/sbin/mke2fs', '/sbin/mke2fs'].find(existsSync);

describe('imageGeometry', () => {
  it('room for every block, a block and an inode per entry, and metadata, in whole MiB', () => {
    const { bytes, inodes } = imageGeometry({ entries: 3000, blockBytes: 100 * 2 ** 20, bytes: 90 * 2 ** 20 });
    expect(bytes % 2 ** 20).toBe(0);
    expect(bytes).toBeGreaterThan(100 * 2 ** 20 + 3000 * 4096);
    expect(bytes).toBeLessThan(160 * 2 ** 20);
    expect(inodes).toBe(3064);
  });
});

describe.skipIf(!MKE2FS)('makeTreeImage (mke2fs -d, no root, no mount)', () => {
  const roots = useTempRoots();

  it('an odd tree (scoped packages, .bin links, odd names, hard links, a sparse file) becomes a clean ext2 image holding every name', async () => {
    const tree = makeOddTree(join(roots.makeRoot(), 'tree'));
    const stats = await treeStats(tree);
    expect(stats.entries).toBeGreaterThan(15);
    const image = join(roots.makeRoot(), 'tree.img');
    await makeTreeImage(MKE2FS!, tree, stats, image);
    // e2fsck -n: read-only check, exit 0 when clean
    execFileSync('/sbin/e2fsck', ['-fn', image], { stdio: 'pipe' });
    const list = (dir: string) => execFileSync('/sbin/debugfs', ['-R', `ls -p ${dir}`, image], { stdio: ['ignore', 'pipe', 'ignore'] }).toString('latin1');
    expect(list('/node_modules')).toMatch(/@scope/);
    expect(list('/node_modules/.bin')).toMatch(/alpha/);
    expect(list('/')).toMatch(/name with spaces\.txt/);
    expect(list('/')).toMatch(/raw-\xff\xfe\.bin/);
    // only the tree: no lost+found of mke2fs's own
    expect(list('/')).not.toMatch(/lost\+found/);
    // the sparse file keeps its holes: the image is far smaller than its apparent 64 MiB
    expect(Number(execFileSync('du', ['-k', image]).toString().split('\t')[0])).toBeLessThan(32 * 1024);
  });

  it('an unreadable source is a coded host error, not a raw exec failure', async () => {
    const image = join(roots.makeRoot(), 'x.img');
    await expect(makeTreeImage(MKE2FS!, join(roots.makeRoot(), 'missing'), { entries: 1, blockBytes: 0, bytes: 0 }, image)).rejects.toMatchObject({ code: 'HOST_IO' });
  });
});
