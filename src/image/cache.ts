import type { Stats } from 'node:fs';
import { lstat, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type KvmtestError, kvmtestError } from '../errors.js';
import { cacheDir } from '../host/paths.js';

/**
 * The cache directory, or a directory kvmtest keeps in it (`cachePath('blobs', 'sha256')`), made
 * 0700 when missing and checked every time: base images and snapshots come from here and run as
 * guests, so a directory another user can write to (or plant a symlink in) is refused (CACHE_UNSAFE).
 */
export async function cachePath(...parts: string[]): Promise<string> {
  let path = cacheDir();
  await mkdir(path, { recursive: true, mode: 0o700 });
  // the root may be a symlink the user made (a cache on another disk): its target is judged
  checkDir(path, await stat(path), 'the kvmtest cache directory');
  for (const part of parts) {
    path = join(path, part);
    await mkdir(path, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
    });
    checkDir(path, await lstat(path), 'a directory in the kvmtest cache');
  }
  return path;
}

function checkDir(path: string, info: Stats, what: string): void {
  const reason = unsafeDirReason(info, process.getuid?.() ?? 0);
  if (reason) throw kvmtestError('CACHE_UNSAFE', `${what} ${path} ${reason}`);
}

/**
 * Why a cache directory cannot be trusted, or undefined. Owned by root is fine (root can do anything
 * anyway; images built with sudo are). Pure.
 */
export function unsafeDirReason(info: Pick<Stats, 'mode' | 'uid' | 'isDirectory' | 'isSymbolicLink'>, uid: number): string | undefined {
  if (info.isSymbolicLink()) return 'is a symlink: refused, another user may have planted it. Remove it (kvmtest makes the directory again)';
  if (!info.isDirectory()) return 'is not a directory: remove it, or set KVMTEST_CACHE to another directory';
  if (info.uid !== uid && info.uid !== 0) {
    return `is owned by uid ${info.uid}, not by you (uid ${uid}): another user could replace the images you boot. Fix: chown -R ${uid} on it, or set KVMTEST_CACHE to a directory of your own`;
  }
  if ((info.mode & 0o022) !== 0) {
    const who = [info.mode & 0o020 ? 'its group' : '', info.mode & 0o002 ? 'others' : ''].filter(Boolean).join(' and ');
    return `is writable by ${who} (mode ${(info.mode & 0o777).toString(8).padStart(4, '0')}): another user could replace the images you boot. Fix: chmod go-w on it (kvmtest makes its directories 0700)`;
  }
  return undefined;
}

/**
 * Refuses a cache file that is a symlink or not a regular file (CACHE_UNSAFE); false when it does
 * not exist. kvmtest never follows a link in its cache: a planted one could make it boot, or
 * overwrite, any file.
 */
export async function cacheFileExists(path: string): Promise<boolean> {
  let info: Stats;
  try {
    info = await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  if (!info.isFile()) throw refusedInCache(path, info.isSymbolicLink() ? 'a symlink' : 'not a regular file');
  return true;
}

/** Like cacheFileExists, for a directory kvmtest made in the cache (a snapshot's, a build's). */
export async function cacheDirExists(path: string): Promise<boolean> {
  const info = await lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (!info) return false;
  if (!info.isDirectory()) throw refusedInCache(path, info.isSymbolicLink() ? 'a symlink' : 'not a directory');
  return true;
}

/** CACHE_UNSAFE for a file in the cache that is a link (or not a file) where kvmtest reads or writes one. */
export function refusedInCache(path: string, what = 'a symlink'): KvmtestError {
  return kvmtestError('CACHE_UNSAFE', `${path} in the kvmtest cache is ${what}: refused, kvmtest never follows links in its cache. Remove it`);
}
