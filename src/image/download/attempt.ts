// One download attempt: a Range/If-Range request and what its status means for the partial file.
import createDebug from 'debug';
import type { Dispatcher } from 'undici';
import { hashPrefix } from './hash.js';
import { contentLength, parseContentRange } from './headers.js';
import { type IdleTimer, withIdleTimeout } from './idle.js';
import type { DownloadJob } from './options.js';
import { type PartialState, receive, sizeOf, startOver } from './partial.js';
import type { Report } from './progress.js';
import { checkComplete, get, release, statusError } from './request.js';
import { changed, readSidecar, type Sidecar, startFresh, validatorOf } from './resume.js';
import { AttemptFailure } from './retry.js';

const debug = createDebug('kvmtest:download');

/** One request; resolves with the size of the complete file, or throws an AttemptFailure or a final KvmtestError. */
export async function attemptDownload(job: DownloadJob, state: PartialState, attempt: number, report: Report): Promise<number> {
  let size = await sizeOf(job.partial);
  let meta = size > 0 ? await readSidecar(job.sidecar) : undefined;
  if (size > 0 && (meta?.url !== job.url || (meta.total !== undefined && size > meta.total))) {
    debug('%s: partial file of %d bytes without a matching %s, starting over', job.url, size, job.sidecar);
    await startOver(job, state);
    size = 0;
    meta = undefined;
  }
  if (size > 0 && (!state.hash || state.hashed !== size)) {
    state.hash = await hashPrefix(job.partial, size, job.algorithm, job.signal);
    state.hashed = size;
  }
  const headers: Record<string, string> = {};
  if (size > 0) {
    headers.range = `bytes=${size}-`;
    const validator = validatorOf(meta);
    if (validator) headers['if-range'] = validator;
  }

  return withIdleTimeout(job, async (signal, idle) => {
    idle.arm();
    const response = await get(job, headers, signal);
    idle.disarm();
    try {
      return await handleResponse(job, state, response, { size, meta, range: headers.range, attempt, idle, report });
    } finally {
      release(response.body); // a no-op once the body was read to its end
    }
  });
}

interface AttemptContext {
  size: number;
  meta: Sidecar | undefined;
  range: string | undefined;
  attempt: number;
  idle: IdleTimer;
  report: Report;
}

/** 200 → start over, 206 → append, 416 → complete or start over; anything else is a failure. */
async function handleResponse(job: DownloadJob, state: PartialState, response: Dispatcher.ResponseData, context: AttemptContext): Promise<number> {
  const { size, meta, attempt, idle, report } = context;
  const { statusCode, headers: got, body } = response;
  debug('GET %s (attempt %d%s): HTTP %d', job.url, attempt, context.range ? `, ${context.range}` : '', statusCode);

  if (statusCode === 416 && size > 0) {
    if (meta?.total === size) {
      state.resumed = true;
      state.total = size;
      return size;
    }
    await startOver(job, state);
    throw new AttemptFailure('restart', `${job.url} refused the range ${context.range} (HTTP 416)`);
  }
  let offset: number;
  if (statusCode === 206) {
    const range = parseContentRange(got['content-range']);
    if (!range || range.start !== size || (size > 0 && changed(meta, got, range.total))) {
      await startOver(job, state);
      const answered = `Content-Range ${String(got['content-range'])}`;
      throw new AttemptFailure('restart', `${job.url} answered ${context.range ?? 'no range'} with ${answered} or another version of the file`);
    }
    if (size === 0) await startFresh(job, state, got, range.total);
    state.resumed = size > 0;
    state.total = range.total ?? meta?.total;
    offset = size;
  } else if (statusCode === 200) {
    if (size > 0) debug('%s: server sent the whole file (range ignored or file changed), starting over', job.url);
    await startFresh(job, state, got, contentLength(got));
    state.total = contentLength(got);
    offset = 0;
  } else {
    throw statusError(job.url, response);
  }

  state.resumedFrom = offset;
  const written = await receive(job, state, body, idle, (received) => report({ received: offset + received, total: state.total, resumedFrom: offset, attempt }));
  checkComplete(written, contentLength(got));
  return offset + written;
}
