// The sidecar next to the partial file, and the If-Range checks that make resuming it safe.
import { readFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { writeNoFollow } from '../../util/no-follow.js';
import { header } from './headers.js';
import type { DownloadJob } from './options.js';
import { hostIo, type PartialState, startOver } from './partial.js';

/** Remembered next to the partial file, so that another attempt or process can resume safely. */
export interface Sidecar {
  url: string;
  etag?: string;
  lastModified?: string;
  total?: number;
}

export async function readSidecar(path: string): Promise<Sidecar | undefined> {
  try {
    const value = JSON.parse(await readFile(path, 'utf8')) as Partial<Sidecar> | null;
    return typeof value?.url === 'string' ? (value as Sidecar) : undefined;
  } catch {
    return undefined; // missing or torn: the partial file cannot be trusted
  }
}

/** The partial file restarts empty (the server sent the whole file): new hash, new validator. */
export async function startFresh(job: DownloadJob, state: PartialState, headers: IncomingHttpHeaders, total: number | undefined): Promise<void> {
  await startOver(job, state);
  const sidecar: Sidecar = { url: job.url, etag: header(headers, 'etag'), lastModified: header(headers, 'last-modified'), total };
  await writeNoFollow(job.sidecar, JSON.stringify(sidecar)).catch((error: unknown) => {
    throw hostIo(job.sidecar, error);
  });
}

/** If-Range needs a strong validator: a strong ETag, else Last-Modified. */
export function validatorOf(meta: Sidecar | undefined): string | undefined {
  if (meta?.etag && !meta.etag.startsWith('W/')) return meta.etag;
  return meta?.lastModified;
}

/** The 206 is for another version of the file than the one the partial file holds (a server ignoring If-Range). */
export function changed(meta: Sidecar | undefined, headers: IncomingHttpHeaders, total: number | undefined): boolean {
  const etag = header(headers, 'etag');
  const lastModified = header(headers, 'last-modified');
  if (meta?.etag && etag) {
    if (meta.etag !== etag) return true;
  } else if (meta?.lastModified && lastModified && meta.lastModified !== lastModified) {
    return true;
  }
  return meta?.total !== undefined && total !== undefined && meta.total !== total;
}
