import { access } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import createDebug from 'debug';
import { isKvmtestError, kvmtestError } from '../errors.js';
import { defaultArch } from '../qemu/arch.js';
import { type BuiltImage, ensureImage, findBuilt } from './build.js';
import { type CatalogEntry, catalogCacheName, catalogSource } from './catalog.js';
import { loadCatalog } from './catalog-file.js';
import { type ChecksumAlgorithm, HEX_LENGTH, parseChecksumFile } from './checksums.js';
import { type Digest, type DownloadProgress, fetchBytes } from './download/index.js';
import { isRecipeName, RECIPES, recipeHasArch } from './recipes.js';
import { verifiedChecksums } from './signature.js';
import { type CachedImage, findCached, type PullOptions, pullBlob } from './store.js';

const debug = createDebug('kvmtest:image');

/** Where a boot's base image came from. */
export type ImageSource =
  | { kind: 'local'; path: string }
  | { kind: 'built'; path: string; built: BuiltImage }
  | { kind: 'catalog'; path: string; entry: CatalogEntry; cached: CachedImage }
  | { kind: 'url'; path: string; cached: CachedImage };

export interface ResolveOptions extends Pick<PullOptions, 'retries' | 'idleTimeoutMs' | 'backoffMs'> {
  signal?: AbortSignal;
  onProgress?: (progress: DownloadProgress) => void;
  /** Progress lines of an image build and notices (such as falling back to a build). */
  onLine?: (line: string) => void;
  /** The guest architecture whose image a name means (default the host's); a path or URL is taken as it is. */
  arch?: string;
}

/** `https://host/img.qcow2#sha256=HEX` → the URL to fetch and the digest to check. Pure. */
export function parseImageUrl(spec: string): { url: string; digest: Digest } {
  const hash = spec.indexOf('#');
  const fragment = hash >= 0 ? spec.slice(hash + 1) : '';
  const match = /^(sha256|sha512)=([0-9a-fA-F]+)$/.exec(fragment);
  if (!match || match[2]!.length !== HEX_LENGTH[match[1] as ChecksumAlgorithm]) {
    throw kvmtestError('INVALID_OPTION', `Expected an image URL to end in #sha256=<64 hex digits> (or #sha512=<128>) so the download can be verified, got ${JSON.stringify(spec)}`);
  }
  return { url: spec.slice(0, hash), digest: { algorithm: match[1] as Digest['algorithm'], hex: match[2]!.toLowerCase() } };
}

export function isImageUrl(spec: string): boolean {
  return /^https?:\/\//i.test(spec);
}

/**
 * Turns what the user wrote into a local base image: a URL (downloaded once, verified), a name
 * (a built image of that name if there is one, else the catalog's download), or a path.
 */
export async function resolveImage(spec: string, options: ResolveOptions = {}): Promise<ImageSource> {
  const pull: PullOptions = pickPull(options);
  const arch = options.arch ?? defaultArch();
  if (isImageUrl(spec)) {
    const { url, digest } = parseImageUrl(spec);
    const cached = await pullBlob(spec, url, digest, pull);
    return { kind: 'url', path: cached.path, cached };
  }
  // a name kvmtest can build for this architecture
  const buildable = isRecipeName(spec) && recipeHasArch(spec, arch);
  if (buildable) {
    const built = await findBuilt(spec, arch);
    if (built) return { kind: 'built', path: built.disk, built };
  }
  const entry = (await loadCatalog()).find((e) => e.name === spec);
  // a release kvmtest builds, for an architecture neither its recipe nor the catalog has
  if (isRecipeName(spec) && !buildable && !entry?.arches[arch as keyof CatalogEntry['arches']]) {
    throw kvmtestError('IMAGE_UNKNOWN', `kvmtest has no ${arch} image of ${spec}: it builds ${spec} for ${RECIPES[spec].arches.join(', ')}`);
  }
  // the catalog's image for this architecture; a release without one is built where it can be
  if (entry && (entry.arches[arch as keyof CatalogEntry['arches']] || !buildable)) {
    try {
      return await pullCatalogImage(entry, options);
    } catch (error) {
      // offline from the publisher but not from Debian's archive: build the same release instead
      if (!buildable || !isUnreachable(error) || options.signal?.aborted) throw error;
      options.onLine?.(`[image] cannot download ${spec} for ${arch} (${(error as Error).message.split('\n')[0]}); building it from Debian's archive instead`);
    }
  }
  if (buildable) {
    const built = await ensureImage(spec, { arch, ...(options.onLine ? { onLine: options.onLine } : {}), ...(options.signal ? { signal: options.signal } : {}) });
    return { kind: 'built', path: built.disk, built };
  }
  if (
    looksLikePath(spec) ||
    (await access(spec).then(
      () => true,
      () => false,
    ))
  )
    return { kind: 'local', path: resolvePath(spec) };
  const names = [...new Set([...(await loadCatalog()).map((e) => e.name), ...Object.keys(RECIPES)])].sort();
  throw kvmtestError('IMAGE_UNKNOWN', `unknown image ${JSON.stringify(spec)}: give a catalog name (${names.join(', ')}), a path to a qcow2/raw file, or an https URL ending in #sha256=…`);
}

/** A catalog image: from the cache, else its publisher's checksum file, then the image, verified. */
export async function pullCatalogImage(entry: CatalogEntry, options: ResolveOptions = {}): Promise<Extract<ImageSource, { kind: 'catalog' }>> {
  const arch = options.arch ?? defaultArch();
  const name = catalogCacheName(entry, arch);
  const cached = await findCached(name);
  if (cached) return { kind: 'catalog', path: cached.path, entry, cached };
  if (!entry.cloudInit) throw kvmtestError('NO_CLOUD_INIT', `${entry.name} has no cloud-init, which kvmtest needs to start its agent; pick another image`);
  const source = catalogSource(entry, arch);
  debug('%s: checksum from %s', entry.name, source.checksumUrl);
  const fetch = { ...(options.signal ? { signal: options.signal } : {}), ...(options.retries !== undefined ? { retries: options.retries } : {}) };
  // only what a signature vouches for is read, when the publisher signs and a keyring is installed
  const { text, check } = await verifiedChecksums(await fetchBytes(source.checksumUrl, fetch), source.checksumUrl, source.signature, fetch);
  debug('%s: %s (%s)', entry.name, check.status, check.detail);
  const hex = parseChecksumFile(text, source.checksumFormat, source.algorithm, source.fileName);
  if (!hex) throw kvmtestError('DOWNLOAD_FAILED', `${source.checksumUrl} lists no ${source.algorithm} for ${source.fileName}: the catalog entry for ${entry.name} may be out of date`);
  const pulled = await pullBlob(name, source.url, { algorithm: source.algorithm, hex }, { ...pickPull(options), signature: check });
  return { kind: 'catalog', path: pulled.path, entry, cached: pulled };
}

const NETWORK_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENETUNREACH', 'EHOSTUNREACH', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET']);

/** The publisher could not be reached at all (as opposed to answering 404 or a bad checksum). */
export function isUnreachable(error: unknown): boolean {
  if (!isKvmtestError(error)) return false;
  if (error.code === 'DOWNLOAD_TIMEOUT') return true;
  if (error.code !== 'DOWNLOAD_FAILED') return false;
  for (let e: unknown = error.cause, depth = 0; e instanceof Error && depth < 6; e = e.cause, depth++) {
    if (NETWORK_CODES.has(String((e as { code?: unknown }).code))) return true;
  }
  return false;
}

function looksLikePath(spec: string): boolean {
  return spec.includes('/') || /\.(qcow2|img|raw)$/i.test(spec);
}

function pickPull(options: ResolveOptions): PullOptions {
  const out: PullOptions = {};
  if (options.signal) out.signal = options.signal;
  if (options.onProgress) out.onProgress = options.onProgress;
  if (options.retries !== undefined) out.retries = options.retries;
  if (options.idleTimeoutMs !== undefined) out.idleTimeoutMs = options.idleTimeoutMs;
  if (options.backoffMs !== undefined) out.backoffMs = options.backoffMs;
  return out;
}
