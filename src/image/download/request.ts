// The HTTP side of an attempt: the GET, its body read under the idle timer, and what a status code means.
import { type IncomingHttpHeaders, STATUS_CODES } from 'node:http';
import type { Readable } from 'node:stream';
import { type Dispatcher, request } from 'undici';
import { kvmtestError } from '../../errors.js';
import { header } from './headers.js';
import type { IdleTimer } from './idle.js';
import type { RetryPolicy } from './options.js';
import { AttemptFailure } from './retry.js';

const MAX_REDIRECTIONS = 5;

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * The GET, following up to MAX_REDIRECTIONS redirects itself so that each hop is judged: from https
 * a redirect must stay on https (DOWNLOAD_INSECURE), or anyone on the path could swap the file; a
 * checksum fetched that way would vouch for whatever they sent.
 */
export async function get(policy: RetryPolicy, headers: Record<string, string>, signal: AbortSignal): Promise<Dispatcher.ResponseData> {
  let url = policy.url;
  for (let hop = 0; ; hop++) {
    const response = await request(url, {
      method: 'GET',
      headers: { 'accept-encoding': 'identity', 'user-agent': 'kvmtest', ...headers },
      signal,
      dispatcher: policy.dispatcher,
      maxRedirections: 0,
      // our idle timer covers both, and does not count time spent hashing or writing
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    const location = header(response.headers, 'location');
    if (!REDIRECTS.has(response.statusCode) || location === undefined || hop >= MAX_REDIRECTIONS) return response;
    release(response.body);
    url = nextHop(policy.url, url, location);
  }
}

/** Where a redirect leads, refused when it leaves https for anything else. Pure. */
export function nextHop(start: string, current: string, location: string): string {
  let next: URL;
  try {
    next = new URL(location, current);
  } catch {
    throw kvmtestError('DOWNLOAD_FAILED', `${current} redirects to ${JSON.stringify(location)}, which is not a URL`);
  }
  const from = new URL(current).protocol;
  if ((from === 'https:' && next.protocol !== 'https:') || (next.protocol !== 'https:' && next.protocol !== 'http:')) {
    const via = current === start ? '' : ` (reached from ${start})`;
    throw kvmtestError(
      'DOWNLOAD_INSECURE',
      `${current}${via} redirects to ${next.href}: refused, a download that is on https must stay on https (a plain http: hop can be rewritten by anyone on the path)`,
    );
  }
  return next.href;
}

/** Body chunks, each awaited under the idle timer; the body is released whenever the consumer stops. */
export async function* chunksOf(body: Readable, idle: IdleTimer): AsyncGenerator<Buffer> {
  const iterator = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  try {
    for (;;) {
      idle.arm();
      const next = await iterator.next();
      idle.disarm();
      if (next.done) return;
      yield next.value;
    }
  } finally {
    idle.disarm();
    release(body);
  }
}

/** Drops a body we will not read; undici reports that as an 'error' event nobody needs. */
export function release(body: Readable): void {
  body.on('error', () => {});
  body.destroy();
}

export function checkComplete(received: number, declared: number | undefined): void {
  if (declared !== undefined && received < declared) {
    throw new AttemptFailure('retry', `the connection closed after ${received} of ${declared} bytes`);
  }
}

/** Final for 404/410 and other 4xx, or for too many redirects; retryable for 408, 429 and 5xx. */
export function statusError(url: string, response: Dispatcher.ResponseData): Error {
  const { statusCode: status, headers } = response;
  release(response.body);
  const described = `HTTP ${status}${STATUS_CODES[status] ? ` ${STATUS_CODES[status]}` : ''}`;
  if (status === 404 || status === 410) {
    return kvmtestError('DOWNLOAD_NOT_FOUND', `${url} answered ${described}: check the URL (the release may have moved or been removed)`);
  }
  if (status === 408 || status === 429 || status >= 500) {
    return new AttemptFailure('retry', `${url} answered ${described}`, { retryAfterMs: retryAfter(headers) });
  }
  if (status >= 300 && status < 400) {
    const location = header(headers, 'location') ?? '?';
    return kvmtestError('DOWNLOAD_FAILED', `${url} still redirects (${described} to ${location}) after ${MAX_REDIRECTIONS} redirections`);
  }
  return kvmtestError('DOWNLOAD_FAILED', `${url} answered ${described}`);
}

function retryAfter(headers: IncomingHttpHeaders): number | undefined {
  const value = header(headers, 'retry-after');
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}
