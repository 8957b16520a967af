import { lstat, readdir, readlink, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { type Lookup, type ResolveBudget, resolveLink, type TreeNode } from './resolve.js';

/** Link lookups one pull may cost before its remaining links are dropped unchecked (a legit tree needs a few per link). */
export const RESOLVE_BUDGET = 1_000_000;

/**
 * Makes the symbolic links set aside during the unpack (every other member is in place by now, so
 * a link to a later member does not dangle), then keeps only those that stay inside `root`.
 */
export async function placeLinks(root: string, records: AsyncIterable<[string, string]> | Iterable<[string, string]>, drop: Drop, stopped: Stopped = () => undefined): Promise<void> {
  for await (const [path, target] of records) {
    throwIfStopped(stopped);
    await symlink(target, join(root, path)).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'EEXIST') drop(path, 'duplicate member: the name exists already');
      else if (error.code === 'ENOENT' || error.code === 'ENOTDIR') drop(path, 'a parent in the archive is not a directory');
      else throw error;
    });
  }
  await pruneLinks(root, drop, stopped);
}

type Drop = (path: string, reason: string) => void;
/** The pull's failure once it has failed: the walk stops at its next step, so nothing is made after the caller cleans up. */
type Stopped = () => Error | undefined;

function throwIfStopped(stopped: Stopped): void {
  const failure = stopped();
  if (failure) throw failure;
}

/**
 * Walks the whole tree under `root` and resolves every symbolic link in it physically (through the
 * links around it, as the kernel would); a link that leads outside `root`, dangles or loops is
 * removed. One pass suffices: a link that resolves keeps resolving, since every link it passes
 * through resolves too (with fewer hops) and is kept.
 */
export async function pruneLinks(root: string, drop: Drop, stopped: Stopped = () => undefined): Promise<void> {
  const lookup = treeLookup(root);
  const budget: ResolveBudget = { steps: RESOLVE_BUDGET };
  const dirs: string[][] = [[]];
  for (let dir = dirs.pop(); dir; dir = dirs.pop()) {
    for (const entry of await readdir(join(root, ...dir), { withFileTypes: true })) {
      const parts = [...dir, entry.name];
      if (entry.isDirectory()) dirs.push(parts);
      if (!entry.isSymbolicLink()) continue;
      throwIfStopped(stopped);
      const full = join(root, ...parts);
      const target = await readlink(full);
      const resolved = await resolveLink(dir, target, lookup, budget);
      if (resolved.ok) continue;
      await unlink(full);
      drop(parts.join('/'), `symbolic link -> ${target}: ${resolved.reason}`);
    }
  }
}

/** lstat and readlink under root: `parts` are always a physical path (real directories), so nothing is followed on the way. */
export function treeLookup(root: string): Lookup {
  return async (parts): Promise<TreeNode | undefined> => {
    const full = join(root, ...parts);
    const info = await lstat(full).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return undefined;
      throw error;
    });
    if (!info) return undefined;
    if (info.isSymbolicLink()) return { type: 'link', target: await readlink(full) };
    if (info.isDirectory()) return { type: 'dir' };
    if (info.isFile()) return { type: 'file' };
    return { type: 'other' };
  };
}
