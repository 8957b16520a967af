import { chmod, mkdir, readdir, readFile, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import createDebug from 'debug';
import lockfile from 'proper-lockfile';
import { cacheDir } from '../host/paths.js';
import { cacheDirExists, cacheFileExists, cachePath } from '../image/cache.js';
import { withLock } from '../util/lock.js';
import { CREATE_NEW, writeNoFollow } from '../util/no-follow.js';

const debug = createDebug('kvmtest:snapshot');

/** Snapshots not restored for this long are pruned. */
export const SNAPSHOT_MAX_AGE_MS = 7 * 24 * 3600 * 1000;

/** A warm snapshot in the cache: the template's RAM, its device state, the disk it is consistent with, and its seed. */
export interface Snapshot {
  key: string;
  dir: string;
  /** Migration stream of the devices (x-ignore-shared: the RAM is in `ram`). */
  state: string;
  /** The template's RAM (its memory-backend-file); clones map it private, so it is never written after the save. */
  ram: string;
  /** The template's overlay at the moment of the save; clones put their own overlay on it. */
  disk: string;
  seed: string;
  meta: SnapshotMeta;
}

export interface SnapshotMeta {
  key: string;
  createdAt: string;
  baseImage: string;
  stateBytes: number;
  /** The RAM file's size: the guest's memory size (QEMU sizes the file). */
  ramBytes: number;
  saveMs: number;
}

export function snapshotsRoot(): string {
  return join(cacheDir(), 'snapshots');
}

export function snapshotPaths(key: string): Omit<Snapshot, 'meta'> {
  const dir = join(snapshotsRoot(), key);
  return { key, dir, state: join(dir, 'state.bin'), ram: join(dir, 'ram.bin'), disk: join(dir, 'disk.qcow2'), seed: join(dir, 'seed.iso') };
}

/**
 * The snapshot for a key, when complete (meta.json is written last; the state and RAM files have
 * the sizes it records, and the RAM file the guest's memory size when `ramBytes` is given), else undefined.
 */
export async function readSnapshot(key: string, ramBytes?: number): Promise<Snapshot | undefined> {
  await cachePath('snapshots');
  const paths = snapshotPaths(key);
  // a snapshot is booted from: a symlink planted at it or any of its files is refused, never followed
  if (!(await cacheDirExists(paths.dir))) return undefined;
  for (const file of [join(paths.dir, 'meta.json'), paths.state, paths.ram, paths.disk, paths.seed]) if (!(await cacheFileExists(file))) return undefined;
  try {
    const meta = JSON.parse(await readFile(join(paths.dir, 'meta.json'), 'utf8')) as SnapshotMeta;
    const state = await stat(paths.state);
    if (state.size !== meta.stateBytes) return undefined;
    // a short RAM file would be extended by the next QEMU that opens it, i.e. written: never boot it
    const ram = await stat(paths.ram);
    if (ram.size !== meta.ramBytes || (ramBytes !== undefined && ram.size !== ramBytes)) return undefined;
    // made private if an older kvmtest left it readable (the RAM may hold secrets of the template's boot)
    for (const [path, mode] of [
      [paths.dir, 0o700],
      [paths.state, 0o600],
      [paths.ram, 0o600],
      [paths.disk, 0o600],
      [paths.seed, 0o600],
      [join(paths.dir, 'meta.json'), 0o600],
    ] as const) {
      await chmod(path, mode).catch(() => {}); // not ours (a shared cache made by root): left as it is
    }
    return { ...paths, meta };
  } catch {
    return undefined;
  }
}

export async function writeMeta(snapshot: Omit<Snapshot, 'meta'>, meta: SnapshotMeta): Promise<Snapshot> {
  // the guest's RAM and disk: readable by this user only
  for (const file of [snapshot.state, snapshot.ram, snapshot.disk, snapshot.seed]) await chmod(file, 0o600);
  await writeNoFollow(join(snapshot.dir, 'meta.json'), JSON.stringify(meta, null, 2), CREATE_NEW);
  return { ...snapshot, meta };
}

/**
 * A new, empty snapshot directory (0700) with the state and RAM files made in it (0600, new: never a
 * planted link) before QEMU writes the devices and the guest's memory there.
 */
export async function makeSnapshotDir(snapshot: Omit<Snapshot, 'meta'>): Promise<void> {
  await cachePath('snapshots');
  await mkdir(snapshot.dir, { mode: 0o700 });
  await writeNoFollow(snapshot.state, '', CREATE_NEW);
  await writeNoFollow(snapshot.ram, '', CREATE_NEW);
}

/** Marks a snapshot as used now, so pruning keeps it. */
export async function touchSnapshot(snapshot: Snapshot): Promise<void> {
  const now = new Date();
  await utimes(join(snapshot.dir, 'meta.json'), now, now).catch(() => {});
}

export async function removeSnapshot(key: string): Promise<void> {
  debug('removing snapshot %s', key);
  await rm(snapshotPaths(key).dir, { recursive: true, force: true });
}

/** Runs fn holding the key's lock: concurrent first uses build a snapshot once, the others wait. */
export async function withSnapshotLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
  await cachePath('snapshots');
  return withLock(snapshotPaths(key).dir, { staleMs: 30_000, updateMs: 5_000, retries: 2000, minWaitMs: 200, maxWaitMs: 1000 }, fn);
}

/** Removes snapshots unused for maxAgeMs and half-written ones whose builder is gone. */
export async function pruneSnapshots(keep: string, maxAgeMs = SNAPSHOT_MAX_AGE_MS): Promise<void> {
  const root = snapshotsRoot();
  for (const entry of await readdir(root).catch(() => [] as string[])) {
    if (entry === keep || entry.endsWith('.lock')) continue;
    const dir = join(root, entry);
    const meta = await stat(join(dir, 'meta.json')).catch(() => undefined);
    const locked = await lockfile.check(dir, { realpath: false, lockfilePath: `${dir}.lock`, stale: 30_000 }).catch(() => false);
    if (locked) continue;
    if (!meta || Date.now() - meta.mtimeMs > maxAgeMs) await removeSnapshot(entry);
  }
}
