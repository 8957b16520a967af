// The partial file on disk: what this call knows of it, appending to it, emptying or discarding it.
import { createHash, type Hash } from 'node:crypto';
import { type FileHandle, open, rm, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { type KvmtestError, kvmtestError } from '../../errors.js';
import { APPEND_NO_FOLLOW, writeNoFollow } from '../../util/no-follow.js';
import type { IdleTimer } from './idle.js';
import type { DownloadJob } from './options.js';
import { chunksOf } from './request.js';
import { describeError } from './retry.js';

/** What this call knows about the partial file: the hash of its first `hashed` bytes. */
export interface PartialState {
  hash?: Hash;
  hashed: number;
  resumed: boolean;
  total: number | undefined;
  resumedFrom: number;
}

/** Appends the body to the partial file, hashing as it goes; returns the bytes written. */
export async function receive(job: DownloadJob, state: PartialState, body: Readable, idle: IdleTimer, onBytes: (n: number) => void): Promise<number> {
  let handle: FileHandle;
  try {
    handle = await open(job.partial, APPEND_NO_FOLLOW, 0o600); // a link planted there fails (ELOOP), never redirects the bytes
  } catch (error) {
    throw hostIo(job.partial, error);
  }
  let written = 0;
  try {
    for await (const chunk of chunksOf(body, idle)) {
      try {
        await writeAll(handle, chunk);
      } catch (error) {
        throw hostIo(job.partial, error);
      }
      state.hash?.update(chunk);
      state.hashed += chunk.length;
      written += chunk.length;
      onBytes(written);
    }
  } finally {
    await handle.close();
  }
  return written;
}

async function writeAll(handle: FileHandle, chunk: Buffer): Promise<void> {
  let done = 0;
  while (done < chunk.length) done += (await handle.write(chunk, done, chunk.length - done)).bytesWritten;
}

export async function startOver(job: DownloadJob, state: PartialState): Promise<void> {
  await writeNoFollow(job.partial, '').catch((error: unknown) => {
    throw hostIo(job.partial, error);
  });
  await rm(job.sidecar, { force: true });
  state.hash = createHash(job.algorithm);
  state.hashed = 0;
  state.resumed = false;
}

export async function discardPartial(job: DownloadJob): Promise<void> {
  await rm(job.partial, { force: true });
  await rm(job.sidecar, { force: true });
}

export async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw hostIo(path, error);
  }
}

export function hostIo(path: string, error: unknown): KvmtestError {
  return kvmtestError('DOWNLOAD_FAILED', `Could not write the download to ${path}: ${describeError(error)}`, { cause: error });
}
