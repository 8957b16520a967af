import { lstat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { abortError } from '../agent/deadline.js';
import { kvmtestError } from '../errors.js';
import type { TreeStats } from './tree.js';

const MiB = 2 ** 20;

/**
 * The size and inode count of an ext2 image that holds a tree: its files' blocks, a block per
 * directory and link, 256-byte inodes, 10% and 16 MiB of room for the filesystem's own metadata. Pure.
 */
export function imageGeometry(stats: TreeStats): { bytes: number; inodes: number } {
  const data = stats.blockBytes + stats.entries * 4096 + stats.entries * 256;
  const bytes = Math.ceil((data * 1.1 + 16 * MiB) / MiB) * MiB;
  return { bytes, inodes: stats.entries + 64 };
}

/**
 * Makes a read-only ext2 image of a tree with `mke2fs -d` (e2fsprogs: no root, no mount; names,
 * modes, links, hard links and holes as they are), without the lost+found mke2fs adds (debugfs). ext2, not ext4: every guest kernel mounts it, and a
 * disk that is read once needs no journal.
 */
export async function makeTreeImage(mke2fs: string, source: string, stats: TreeStats, image: string, signal?: AbortSignal): Promise<void> {
  const { bytes, inodes } = imageGeometry(stats);
  const result = await execa(mke2fs, ['-q', '-F', '-t', 'ext2', '-b', '4096', '-I', '256', '-m', '0', '-N', String(inodes), '-E', 'root_owner=0:0', '-d', source, image, `${bytes / 1024}k`], {
    reject: false,
    env: { MKE2FS_CONFIG: '/dev/null' },
    ...(signal ? { cancelSignal: signal } : {}),
  });
  if (signal?.aborted) throw abortError(`disk image of ${source}`, signal);
  if (result.exitCode !== 0) throw kvmtestError('HOST_IO', `cannot make a disk image of ${source} to push: ${result.stderr.trim().split('\n').slice(-2).join(' ')}`);
  // mke2fs makes a lost+found the tree does not have: it would arrive in the guest as one more directory
  if (!(await exists(join(source, 'lost+found')))) {
    const removed = await execa(join(dirname(mke2fs), 'debugfs'), ['-w', '-R', 'rmdir lost+found', image], { reject: false });
    if (removed.exitCode !== 0) throw kvmtestError('HOST_IO', `cannot make a disk image of ${source} to push: debugfs: ${removed.stderr.trim().split('\n').pop()}`);
  }
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}
