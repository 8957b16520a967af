import { createHash } from 'node:crypto';
import { chmod, lstat, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import createDebug from 'debug';
import { cacheDir } from '../host/paths.js';
import { withLock } from '../util/lock.js';
import { replaceFile } from '../util/no-follow.js';
import { cacheFileExists, cachePath, refusedInCache } from './cache.js';
import { type Digest, type DownloadProgress, download } from './download/index.js';
import type { SignatureCheck } from './signature.js';

const debug = createDebug('kvmtest:store');

/**
 * The downloaded-image cache, addressed by content:
 *   blobs/<algorithm>/<hex>        the verified image, read-only
 *   downloads/<hex>.partial        an unfinished download, resumed by the next pull
 *   refs/<key>.json                a name or URL → its blob, with when it was pulled and last used
 */
export interface ImageRef {
  /** The catalog name, or the URL for an image pulled by URL. */
  name: string;
  url: string;
  digest: Digest;
  size: number;
  pulledAt: string;
  usedAt: string;
  /** What vouched for the checksum of a catalog image when it was pulled. */
  signature?: SignatureCheck;
}

export interface CachedImage extends ImageRef {
  path: string;
}

export function blobPath(digest: Digest, root = cacheDir()): string {
  return join(root, 'blobs', digest.algorithm, digest.hex);
}

function refPath(name: string, root: string): string {
  // names are simple; URLs are hashed into a file name
  const key = /^[a-z0-9][a-z0-9.-]*$/.test(name) ? name : `url-${createHash('sha256').update(name).digest('hex').slice(0, 32)}`;
  return join(root, 'refs', `${key}.json`);
}

export interface PullOptions {
  onProgress?: (progress: DownloadProgress) => void;
  signal?: AbortSignal;
  /** Passed to the downloader (tests use small values). */
  retries?: number;
  idleTimeoutMs?: number;
  backoffMs?: number;
  /** Recorded in the ref: what vouched for the digest. */
  signature?: SignatureCheck;
}

/**
 * The blob for this digest, downloading it first when the cache lacks it. Concurrent pulls of one
 * image (a matrix, vitest workers, two CI jobs on one runner) download once: one holds the lock,
 * the others wait and then find the blob; nobody sees a partial file.
 */
export async function pullBlob(name: string, url: string, digest: Digest, options: PullOptions = {}): Promise<CachedImage> {
  const root = await cachePath();
  const blob = blobPath(digest, root);
  const cached = await readRef(name, root);
  if (cached && cached.digest.hex === digest.hex && (await cacheFileExists(blob))) return touch(cached, root);
  await cachePath('blobs', digest.algorithm);
  const partial = join(await cachePath('downloads'), `${digest.hex.slice(0, 64)}.partial`);
  // a multi-GB download may keep the others waiting a long time: they retry for as long as it lives
  return withLock(blob, { staleMs: 60_000, updateMs: 10_000, retries: 100_000, minWaitMs: 250, maxWaitMs: 2000 }, async () => {
    if (!(await cacheFileExists(blob))) {
      // the downloader opens these without following links too; this says why in the cache's terms
      for (const path of [partial, `${partial}.json`]) if (await isLink(path)) throw refusedInCache(path);
      debug('downloading %s → %s', url, blob);
      await download({
        url,
        dest: blob,
        partial,
        expected: digest,
        ...pick(options, ['onProgress', 'signal', 'retries', 'idleTimeoutMs', 'backoffMs']),
      });
      await chmod(blob, 0o444);
    }
    const size = (await stat(blob)).size;
    const now = new Date().toISOString();
    const ref: ImageRef = {
      name,
      url,
      digest,
      size,
      pulledAt: cached && cached.digest.hex === digest.hex ? cached.pulledAt : now,
      usedAt: now,
      ...(options.signature ? { signature: options.signature } : {}),
    };
    await writeRef(ref, root);
    return { ...ref, path: blob };
  });
}

/** The cached image a name or URL refers to, if its blob is there. */
export async function findCached(name: string): Promise<CachedImage | undefined> {
  const root = await cachePath();
  const ref = await readRef(name, root);
  if (!ref || !(await cacheFileExists(blobPath(ref.digest, root)))) return undefined;
  return touch(ref, root);
}

/** Every pulled image with its blob. */
export async function listCached(): Promise<CachedImage[]> {
  const root = await cachePath();
  const files = await readdir(join(root, 'refs')).catch(() => [] as string[]);
  const out: CachedImage[] = [];
  for (const file of files.filter((f) => f.endsWith('.json')).sort()) {
    const ref = await readJson(join(root, 'refs', file));
    if (ref && (await cacheFileExists(blobPath(ref.digest, root)))) out.push({ ...ref, path: blobPath(ref.digest, root) });
  }
  return out;
}

/** Forgets a name (or URL); its blob goes too when no other name refers to it. Returns whether there was one. */
export async function removeCached(name: string): Promise<boolean> {
  const root = cacheDir();
  const ref = await readRef(name, root);
  if (!ref) return false;
  await rm(refPath(name, root), { force: true });
  const others = await listCached();
  if (!others.some((o) => o.digest.hex === ref.digest.hex)) await rm(blobPath(ref.digest, root), { force: true });
  return true;
}

export interface PruneOptions {
  /** Remove images not used for this long. */
  olderThanMs?: number;
  /** Then remove the least recently used until the images take at most this many bytes. */
  maxBytes?: number;
  now?: number;
}

/** Which images a prune removes: unused for too long, then least recently used beyond the size cap. Pure. */
export function choosePrunable<T extends Pick<ImageRef, 'usedAt' | 'size'>>(images: T[], options: PruneOptions): T[] {
  const now = options.now ?? Date.now();
  const byUse = [...images].sort((a, b) => Date.parse(a.usedAt) - Date.parse(b.usedAt));
  const doomed = new Set(options.olderThanMs === undefined ? [] : byUse.filter((i) => now - Date.parse(i.usedAt) > options.olderThanMs!));
  if (options.maxBytes !== undefined) {
    let total = byUse.filter((i) => !doomed.has(i)).reduce((sum, i) => sum + i.size, 0);
    for (const image of byUse) {
      if (total <= options.maxBytes) break;
      if (doomed.has(image)) continue;
      doomed.add(image);
      total -= image.size;
    }
  }
  return byUse.filter((i) => doomed.has(i));
}

/** Removes what choosePrunable picks, plus downloads abandoned for over a day. */
export async function pruneCached(options: PruneOptions): Promise<CachedImage[]> {
  const root = cacheDir();
  const doomed = choosePrunable(await listCached(), options);
  for (const image of doomed) await removeCached(image.name);
  const partials = join(root, 'downloads');
  for (const file of await readdir(partials).catch(() => [] as string[])) {
    const info = await stat(join(partials, file)).catch(() => undefined);
    if (info && (options.now ?? Date.now()) - info.mtimeMs > 24 * 3600_000) await rm(join(partials, file), { force: true });
  }
  return doomed;
}

async function touch(ref: ImageRef, root: string): Promise<CachedImage> {
  const used = { ...ref, usedAt: new Date().toISOString() };
  await writeRef(used, root).catch(() => {});
  return { ...used, path: blobPath(ref.digest, root) };
}

async function readRef(name: string, root: string): Promise<ImageRef | undefined> {
  return readJson(refPath(name, root));
}

async function readJson(path: string): Promise<ImageRef | undefined> {
  if (!(await cacheFileExists(path))) return undefined;
  try {
    const ref = JSON.parse(await readFile(path, 'utf8')) as ImageRef;
    return typeof ref.name === 'string' && ref.digest && /^[0-9a-f]+$/.test(ref.digest.hex) ? ref : undefined;
  } catch {
    return undefined;
  }
}

async function writeRef(ref: ImageRef, root: string): Promise<void> {
  await cachePath('refs');
  await replaceFile(refPath(ref.name, root), `${JSON.stringify(ref, null, 2)}\n`, refusedInCache);
}

async function isLink(path: string): Promise<boolean> {
  return lstat(path).then(
    (info) => info.isSymbolicLink(),
    () => false,
  );
}

function pick<T extends object, K extends keyof T>(object: T, keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const key of keys) if (object[key] !== undefined) out[key] = object[key];
  return out;
}
