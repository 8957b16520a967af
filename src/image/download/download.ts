// download(): the attempt loop around one file, then verification and the rename into place.
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import createDebug from 'debug';
import { kvmtestError } from '../../errors.js';
import { attemptDownload } from './attempt.js';
import { downloadJob } from './options.js';
import { discardPartial, type PartialState } from './partial.js';
import { throttle } from './progress.js';
import { withRetries } from './retry.js';
import type { Digest, DownloadOptions, DownloadResult } from './types.js';

const debug = createDebug('kvmtest:download');

/**
 * Download `url` to `dest`: streamed to a partial file that survives failures and processes, resumed with
 * Range/If-Range, retried with backoff, hashed on the fly and renamed into place only once verified.
 */
export async function download(options: DownloadOptions): Promise<DownloadResult> {
  const job = downloadJob(options);
  await mkdir(dirname(job.partial), { recursive: true });
  await mkdir(dirname(job.dest), { recursive: true });
  const state: PartialState = { hashed: 0, resumed: false, total: undefined, resumedFrom: 0 };
  const report = throttle(options.onProgress);
  const { value: bytes, attempts } = await withRetries(
    job,
    `Download of ${job.url}`,
    (attempt) => attemptDownload(job, state, attempt, report),
    `; ${job.partial} is kept for the next call to resume`,
  );
  report({ received: bytes, total: state.total ?? bytes, resumedFrom: state.resumedFrom, attempt: attempts }, true);
  if (!state.hash) throw kvmtestError('INTERNAL', 'unreachable: a finished download always has a hash');
  const digest: Digest = { algorithm: job.algorithm, hex: state.hash.digest('hex') };

  if (job.expected && job.expected.hex.toLowerCase() !== digest.hex) {
    await discardPartial(job);
    throw kvmtestError(
      'CHECKSUM_MISMATCH',
      `Checksum mismatch for ${job.url}: expected ${job.algorithm} ${job.expected.hex.toLowerCase()}, got ${digest.hex}. ` +
        'The download was deleted; if a new attempt fails the same way, the file or its published checksum changed upstream.',
    );
  }
  await fsync(job.partial, 'r+');
  await rename(job.partial, job.dest);
  await rm(job.sidecar, { force: true });
  await fsync(dirname(job.dest), 'r').catch(() => {}); // makes the rename durable; not possible on every filesystem
  debug('%s → %s: %d bytes in %d attempt(s)%s', job.url, job.dest, bytes, attempts, state.resumed ? ', resumed' : '');
  return { path: job.dest, digest, bytes, resumed: state.resumed, attempts };
}

async function fsync(path: string, flags: 'r' | 'r+'): Promise<void> {
  const handle = await open(path, flags);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
