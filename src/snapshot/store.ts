import { chmod, mkdir, readFile, rm, stat, utimes } from 'node:fs/promises';
import { basename, join } from 'node:path';
import createDebug from 'debug';
import lockfile from 'proper-lockfile';
import { cacheDir } from '../host/paths.js';
import { cacheDirExists, cacheFileExists, cachePath } from '../image/cache.js';
import { withLock } from '../util/lock.js';
import { CREATE_NEW, writeNoFollow } from '../util/no-follow.js';

const debug = createDebug('kvmtest:snapshot');

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
  /** Set for a cached setup layer (a checkpoint after a user's setup) on top of the snapshot `parent`. */
  layer?: { parent: string; label: string; setupMs: number; parentCreatedAt?: string };
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
  const checked = await inspectSnapshot(key, ramBytes);
  if (!checked.snapshot) return undefined;
  const paths = checked.snapshot;
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
  return checked.snapshot;
}

/**
 * Whether a key's snapshot is complete, without changing anything: the snapshot, or why it cannot be
 * booted (`kvmtest cache list` shows the reason). A link at the directory or any of its files is CACHE_UNSAFE.
 */
export async function inspectSnapshot(key: string, ramBytes?: number): Promise<{ snapshot: Snapshot; reason?: never } | { snapshot?: never; reason: string }> {
  await cachePath('snapshots');
  const paths = snapshotPaths(key);
  // a snapshot is booted from: a symlink planted at it or any of its files is refused, never followed
  if (!(await cacheDirExists(paths.dir))) return { reason: 'missing' };
  const metaPath = join(paths.dir, 'meta.json');
  for (const file of [metaPath, paths.state, paths.ram, paths.disk, paths.seed]) {
    if (await cacheFileExists(file)) continue;
    if (file === metaPath) return { reason: 'half-written (no meta.json)' };
    if (file === paths.ram && (await isOlderFormat(metaPath))) return { reason: 'older format (whole RAM, no ram.bin)' };
    return { reason: `no ${basename(file)}` };
  }
  try {
    const meta = JSON.parse(await readFile(metaPath, 'utf8')) as SnapshotMeta;
    const state = await stat(paths.state);
    if (state.size !== meta.stateBytes) return { reason: `state.bin is ${state.size} bytes, meta.json says ${meta.stateBytes}` };
    // a short RAM file would be extended by the next QEMU that opens it, i.e. written: never boot it
    const ram = await stat(paths.ram);
    if (ram.size !== meta.ramBytes) return { reason: meta.ramBytes === undefined ? 'older format (no ramBytes in meta.json)' : `ram.bin is ${ram.size} bytes, meta.json says ${meta.ramBytes}` };
    if (ramBytes !== undefined && ram.size !== ramBytes) return { reason: `ram.bin is ${ram.size} bytes, the guest has ${ramBytes}` };
    return { snapshot: { ...paths, meta } };
  } catch {
    return { reason: 'unreadable meta.json' };
  }
}

/** An older kvmtest's whole-RAM snapshot: meta.json records no RAM file. */
async function isOlderFormat(metaPath: string): Promise<boolean> {
  try {
    return (JSON.parse(await readFile(metaPath, 'utf8')) as Partial<SnapshotMeta>).ramBytes === undefined;
  } catch {
    return false;
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

/** How a snapshot's builder holds its lock: one that stops refreshing it for staleMs is presumed dead. */
const LOCK_TIMING = { staleMs: 30_000, updateMs: 5_000 };

/** Runs fn holding the key's lock: concurrent first uses build a snapshot once, the others wait. */
export async function withSnapshotLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
  await cachePath('snapshots');
  return withLock(snapshotPaths(key).dir, { ...LOCK_TIMING, retries: 2000, minWaitMs: 200, maxWaitMs: 1000 }, fn);
}

/** Whether a live builder holds the key's lock (a stale lock does not count). */
export async function isSnapshotLocked(key: string): Promise<boolean> {
  const dir = snapshotPaths(key).dir;
  return lockfile.check(dir, { realpath: false, lockfilePath: `${dir}.lock`, stale: LOCK_TIMING.staleMs }).catch(() => false);
}

/** Runs fn holding the key's lock if nobody holds it now (no waiting), else returns undefined: a builder keeps what it builds. */
export async function tryWithSnapshotLock<T>(key: string, fn: () => Promise<T>): Promise<{ value: T } | undefined> {
  await cachePath('snapshots');
  const dir = snapshotPaths(key).dir;
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(dir, { realpath: false, lockfilePath: `${dir}.lock`, stale: LOCK_TIMING.staleMs, update: LOCK_TIMING.updateMs, retries: 0 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOCKED') return undefined;
    throw error;
  }
  try {
    return { value: await fn() };
  } finally {
    await release();
  }
}
