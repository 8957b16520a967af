// What a pushed tree holds, walked once without following links: how big a disk image of it must be,
// and whether it is worth one.
import { lstat, readdir } from 'node:fs/promises';

export interface TreeStats {
  /** Directories, files, links and others, the root included. */
  entries: number;
  /** Regular files' bytes, each rounded up to a 4 KiB block (what an image spends on them). */
  blockBytes: number;
  /** Regular files' apparent bytes. */
  bytes: number;
}

/**
 * Walks a directory tree (links inside it are counted, never followed; names as bytes, so any name counts).
 * A root that is a link is followed, as every push path follows its named source (mke2fs -d, tar -C, stat).
 */
export async function treeStats(root: string): Promise<TreeStats> {
  const stats: TreeStats = { entries: 1, blockBytes: 0, bytes: 0 };
  const pending: Buffer[] = [Buffer.from(root)];
  while (pending.length > 0) {
    const dir = pending.pop()!;
    for (const entry of await readdir(dir, { withFileTypes: true, encoding: 'buffer' })) {
      stats.entries++;
      const path = Buffer.concat([dir, Buffer.from('/'), entry.name]);
      if (entry.isDirectory()) pending.push(path);
      else if (entry.isFile()) {
        const { size } = await lstat(path);
        stats.bytes += size;
        stats.blockBytes += Math.ceil(size / 4096) * 4096;
      }
    }
  }
  return stats;
}
