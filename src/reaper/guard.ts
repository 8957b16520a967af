import { lstatSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
import type { ReapTarget } from './protocol.js';

/** Why the reaper refuses a root or a target, or undefined when it may act on it. */
export type Refusal = string | undefined;

const uid = () => process.getuid?.() ?? -1;

/**
 * A client's temp root, as a real path, when it is one the reaper may delete children of: a
 * directory owned by this user (or root), writable by others only when sticky (as /tmp is), so no
 * other user can have made it or swap its children.
 */
export function checkRoot(path: unknown): { root: string } | { refused: string } {
  if (typeof path !== 'string' || !isAbsolute(path)) return { refused: `root ${JSON.stringify(path)} is not an absolute path` };
  let real: string;
  try {
    real = realpathSync(path);
    const st = statSync(real);
    if (!st.isDirectory() || real === '/') return { refused: `root ${real} is not a temp directory` };
    if (st.uid !== uid() && st.uid !== 0) return { refused: `root ${real} is owned by uid ${st.uid}` };
    if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) return { refused: `root ${real} is writable by others and not sticky` };
  } catch (error) {
    return { refused: `root ${path}: ${(error as Error).message}` };
  }
  return { root: real };
}

/**
 * Whether the reaper may act on a target: a kvmtest name, and a directory named kvmtest* that is a
 * real directory (not a symlink), owned by this user, directly inside one of the roots (real paths).
 * Checked when registered and again just before deleting (the path may have changed since).
 */
export function checkTarget(target: unknown, roots: Iterable<string>): Refusal {
  const t = target as ReapTarget;
  if (typeof t !== 'object' || t === null) return 'not a target';
  if (typeof t.name !== 'string' || !/^kvmtest-[a-z0-9-]+$/.test(t.name)) return `name ${JSON.stringify(t.name)} is not a kvmtest guest's`;
  if (t.pid !== undefined && (!Number.isInteger(t.pid) || t.pid <= 1)) return `pid ${JSON.stringify(t.pid)} is not a process`;
  if (typeof t.dir !== 'string' || !isAbsolute(t.dir) || !basename(t.dir).startsWith('kvmtest')) return `dir ${JSON.stringify(t.dir)} is not a kvmtest directory`;
  try {
    const st = lstatSync(t.dir);
    if (st.isSymbolicLink() || !st.isDirectory()) return `${t.dir} is not a directory`;
    if (st.uid !== uid()) return `${t.dir} is owned by uid ${st.uid}`;
    const parent = realpathSync(dirname(t.dir));
    const real = realpathSync(t.dir);
    for (const root of roots) if (parent === root && real === join(root, basename(t.dir))) return undefined;
    return `${t.dir} is not directly inside a registered temp root`;
  } catch (error) {
    return `${t.dir}: ${(error as Error).message}`;
  }
}
