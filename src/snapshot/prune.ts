import { lstat, readdir, rm, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import createDebug from 'debug';
import { readSnapshotEntry, type SnapshotEntry, snapshotEntryNames } from './list.js';
import { snapshotsRoot, tryWithSnapshotLock } from './store.js';

const debug = createDebug('kvmtest:snapshot');

/** Snapshots not restored for this long are pruned. */
export const SNAPSHOT_MAX_AGE_MS = 7 * 24 * 3600 * 1000;

export interface PruneOptions {
  /** Entries unused for longer than this go (default SNAPSHOT_MAX_AGE_MS). */
  olderThanMs?: number;
  /** Every entry no builder holds goes. */
  all?: boolean;
  /** An entry that stays whatever its state (the one being made). */
  keep?: string;
  now?: number;
}

/** Why an entry was pruned: `incomplete` (half-written, an older format, wrong sizes, a link), `unused` (older than the limit), `all`. */
export type PruneWhy = 'incomplete' | 'unused' | 'all';

export interface PrunedSnapshot {
  key: string;
  /** Allocated bytes freed. */
  bytes: number;
  why: PruneWhy;
  entry: SnapshotEntry;
}

/** Why this entry goes, or undefined when it stays: a builder's lock or `keep` always keeps it. Pure. */
export function pruneReason(entry: SnapshotEntry, options: PruneOptions, now: number): PruneWhy | undefined {
  if (entry.key === options.keep || entry.locked) return undefined;
  if (options.all) return 'all';
  if (entry.status === 'incomplete') return 'incomplete';
  if (now - entry.lastUsedMs > (options.olderThanMs ?? SNAPSHOT_MAX_AGE_MS)) return 'unused';
  return undefined;
}

/**
 * Removes incomplete entries (half-written, an older kvmtest's whole-RAM format) and entries unused for
 * olderThanMs, or, with `all`, every entry; each is judged and removed holding its lock, so an entry a
 * builder holds is never touched. A link planted in snapshots/ is removed itself, never followed.
 */
export async function pruneSnapshots(options: PruneOptions = {}): Promise<PrunedSnapshot[]> {
  const now = options.now ?? Date.now();
  const removed: PrunedSnapshot[] = [];
  for (const key of await pruneCandidates()) {
    if (key === options.keep) continue;
    // a held lock is skipped; a stale one (its builder died) is taken over, and goes with its release
    const done = await tryWithSnapshotLock(key, async () => {
      const entry = await readSnapshotEntry(key, { lockHeld: true });
      const why = entry && pruneReason(entry, options, now);
      if (!entry || !why) return undefined;
      await removeEntry(join(snapshotsRoot(), key));
      return { key, bytes: entry.bytes, why, entry };
    });
    if (done?.value) removed.push(done.value);
  }
  return removed;
}

/** The entries, and the names of locks whose entry is gone (so a dead builder's stale lock is cleared). */
async function pruneCandidates(): Promise<string[]> {
  const names = await snapshotEntryNames();
  const locks = (await readdir(snapshotsRoot()).catch(() => [] as string[])).filter((n) => n.endsWith('.lock')).map((n) => n.slice(0, -'.lock'.length));
  // '...lock' would name '..': only a plain name is ever an entry
  return [...new Set([...names, ...locks])].filter((n) => n !== '' && n !== '.' && n !== '..');
}

async function removeEntry(path: string): Promise<void> {
  if (dirname(path) !== snapshotsRoot()) return; // never anything but an entry of snapshots/
  debug('pruning %s', path);
  const info = await lstat(path).catch(() => undefined);
  if (!info) return;
  // rm never follows links inside a directory; a link (or file) at the entry itself is unlinked, its target untouched
  if (info.isDirectory()) await rm(path, { recursive: true, force: true });
  else await unlink(path);
}
