import type { Stats } from 'node:fs';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isKvmtestError } from '../errors.js';
import { cachePath } from '../image/cache.js';
import { inspectSnapshot, isSnapshotLocked, type SnapshotMeta, snapshotsRoot } from './store.js';

/** A warm image snapshot, or a cached setup layer (a checkpoint after a user's setup, on top of a snapshot). */
export type SnapshotKind = 'image' | 'setup';

/** `building`: a live builder holds the entry's lock; nothing may remove it. */
export type SnapshotStatus = 'ready' | 'incomplete' | 'building';

/** One entry of `<cache>/snapshots/`, as `kvmtest cache list` shows it. */
export interface SnapshotEntry {
  /** The entry's name in snapshots/ (a snapshot's key). */
  key: string;
  kind: SnapshotKind;
  /** The base image the snapshot was made from, when meta.json says. */
  baseImage?: string;
  createdAt?: string;
  layer?: NonNullable<SnapshotMeta['layer']>;
  /** meta.json's mtime (touchSnapshot sets it at each restore), else the entry's own. */
  lastUsedMs: number;
  /** Allocated on disk (ram.bin is sparse): the blocks of its regular files. */
  bytes: number;
  status: SnapshotStatus;
  /** Why it cannot be booted, when it cannot. */
  reason?: string;
  locked: boolean;
}

/** Every entry in the snapshot cache, most recently used first; an empty list when there is no cache. */
export async function listSnapshots(): Promise<SnapshotEntry[]> {
  const entries: SnapshotEntry[] = [];
  for (const name of await snapshotEntryNames()) {
    const entry = await readSnapshotEntry(name);
    if (entry) entries.push(entry);
  }
  return entries.sort((a, b) => b.lastUsedMs - a.lastUsedMs || a.key.localeCompare(b.key));
}

/** The names in snapshots/ that are entries (not their `.lock` directories); none when it does not exist. */
export async function snapshotEntryNames(): Promise<string[]> {
  // listing must not make a cache that is not there; when it is, it is checked as every use checks it
  if (!(await lstat(snapshotsRoot()).catch(() => undefined))) return [];
  const root = await cachePath('snapshots');
  return (await readdir(root)).filter((name) => !name.endsWith('.lock')).sort();
}

/**
 * What one entry is, reading only: a link at it or in it is reported (never followed), an entry that
 * vanished meanwhile is undefined. `lockHeld`: the caller holds the entry's lock (prune), so it is not asked.
 */
export async function readSnapshotEntry(key: string, options: { lockHeld?: boolean } = {}): Promise<SnapshotEntry | undefined> {
  const dir = join(snapshotsRoot(), key);
  const info = await lstat(dir).catch(() => undefined);
  if (!info) return undefined;
  const locked = options.lockHeld ? false : await isSnapshotLocked(key);
  if (!info.isDirectory()) {
    const reason = info.isSymbolicLink() ? 'a symlink (never followed)' : 'not a directory';
    return { key, kind: 'image', lastUsedMs: info.mtimeMs, bytes: info.isFile() ? allocated(info) : 0, status: locked ? 'building' : 'incomplete', reason, locked };
  }
  const metaInfo = await lstat(join(dir, 'meta.json')).catch(() => undefined);
  const meta = metaInfo?.isFile() ? await readMeta(join(dir, 'meta.json')) : undefined;
  let reason: string | undefined;
  try {
    reason = (await inspectSnapshot(key)).reason;
  } catch (error) {
    if (!isKvmtestError(error) || error.code !== 'CACHE_UNSAFE') throw error;
    reason = 'holds a symlink (never followed)';
  }
  return {
    key,
    kind: meta?.layer ? 'setup' : 'image',
    ...(meta?.baseImage !== undefined ? { baseImage: meta.baseImage } : {}),
    ...(meta?.createdAt !== undefined ? { createdAt: meta.createdAt } : {}),
    ...(meta?.layer ? { layer: meta.layer } : {}),
    lastUsedMs: metaInfo?.isFile() ? metaInfo.mtimeMs : info.mtimeMs,
    bytes: await allocatedBytes(dir),
    status: locked ? 'building' : reason === undefined ? 'ready' : 'incomplete',
    ...(reason !== undefined ? { reason } : {}),
    locked,
  };
}

/** The fields a listing shows, each kept only when it has the right type (an older or damaged meta.json). */
async function readMeta(path: string): Promise<{ baseImage?: string; createdAt?: string; layer?: SnapshotEntry['layer'] } | undefined> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const meta = raw as Record<string, unknown>;
  const layer = (typeof meta.layer === 'object' && meta.layer !== null ? meta.layer : {}) as Record<string, unknown>;
  const { parent, label, setupMs } = layer;
  return {
    ...(typeof meta.baseImage === 'string' ? { baseImage: meta.baseImage } : {}),
    ...(typeof meta.createdAt === 'string' ? { createdAt: meta.createdAt } : {}),
    ...(typeof parent === 'string' && typeof label === 'string' && typeof setupMs === 'number' ? { layer: { parent, label, setupMs } } : {}),
  };
}

/** The allocated bytes of the regular files under dir (lstat: links are neither followed nor counted). */
async function allocatedBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const path = join(dir, name);
    const info = await lstat(path).catch(() => undefined);
    if (info?.isDirectory()) total += await allocatedBytes(path);
    else if (info?.isFile()) total += allocated(info);
  }
  return total;
}

function allocated(info: Stats): number {
  return info.blocks * 512;
}
