import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { STATUS_CODES, type IncomingHttpHeaders } from 'node:http';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import createDebug from 'debug';
import { Agent, EnvHttpProxyAgent, request, type Dispatcher } from 'undici';
import { KvmtestError } from '../errors.js';

const debug = createDebug('kvmtest:download');

const MAX_REDIRECTIONS = 5;
const BACKOFF_CAP_MS = 10_000;
/** A server's Retry-After is honoured up to this long. */
const RETRY_AFTER_CAP_MS = 60_000;
const PROGRESS_EVERY_MS = 100;
const HEX_LENGTHS = { sha256: 64, sha512: 128 };
/** Start-overs caused by the server (file changed, odd Content-Range, 416) that do not use up a retry. */
const FREE_RESTARTS = 2;
const RETRYABLE_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENETUNREACH', 'ENETDOWN', 'EHOSTUNREACH',
]);
/** undici's own errors are network trouble, except the ones that mean we called it wrong. */
const NON_RETRYABLE_UNDICI = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED', 'UND_ERR_INVALID_RETURN_VALUE']);

export interface Digest {
  algorithm: 'sha256' | 'sha512';
  hex: string;
}

export interface DownloadProgress {
  /** Bytes in the file so far, including those resumed from. */
  received: number;
  /** Size of the whole file, when the server said. */
  total?: number;
  /** Where the current attempt started (0 unless resuming). */
  resumedFrom: number;
  attempt: number;
}

export interface DownloadOptions {
  url: string;
  /** Final path; written only after verification (rename of the partial file). */
  dest: string;
  /** Where the partial download lives between attempts and processes (default `${dest}.partial`); a later call resumes it. */
  partial?: string;
  /** Verified before the rename; also picks the algorithm of the returned digest (default sha256). */
  expected?: Digest;
  /** At most every 100 ms, plus a final call once the whole file is on disk. */
  onProgress?: (progress: DownloadProgress) => void;
  signal?: AbortSignal;
  /** Retries after the first attempt (default 4), with exponential backoff and jitter. */
  retries?: number;
  /** Base of the backoff (default 500 ms, doubled per failure, capped at 10 s). */
  backoffMs?: number;
  /** No byte for this long fails the attempt (default 60 s); after the last retry → DOWNLOAD_TIMEOUT. */
  idleTimeoutMs?: number;
  /** Default: one shared dispatcher honouring HTTP_PROXY/HTTPS_PROXY/NO_PROXY (and lowercase). */
  dispatcher?: Dispatcher;
}

export interface DownloadResult {
  path: string;
  digest: Digest;
  bytes: number;
  /** The file was completed from bytes fetched earlier (a previous call or an interrupted attempt), not in one response. */
  resumed: boolean;
  /** Requests made by this call. */
  attempts: number;
}

export interface FetchTextOptions {
  signal?: AbortSignal;
  retries?: number;
  dispatcher?: Dispatcher;
  /** Larger bodies fail with DOWNLOAD_FAILED (default 1 MiB). */
  maxBytes?: number;
  backoffMs?: number;
  idleTimeoutMs?: number;
}

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
  if (!state.hash) throw new Error('unreachable: a finished download always has a hash');
  const digest: Digest = { algorithm: job.algorithm, hex: state.hash.digest('hex') };

  if (job.expected && job.expected.hex.toLowerCase() !== digest.hex) {
    await discardPartial(job);
    throw new KvmtestError(
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

/** A small text file (a checksum list): same retries and 404 handling as download(), bounded in size, kept in memory. */
export async function fetchText(url: string, options: FetchTextOptions = {}): Promise<string> {
  const maxBytes = options.maxBytes ?? 1024 * 1024;
  checkInteger('maxBytes', maxBytes, 1);
  const job = { ...policyFrom({ ...options, url }), dispatcher: options.dispatcher ?? defaultDispatcher() };
  const { value } = await withRetries(job, `Fetching ${url}`, (attempt) =>
    withIdleTimeout(job, async (signal, idle) => {
      idle.arm();
      const response = await get(job, {}, signal);
      debug('GET %s (attempt %d): HTTP %d', url, attempt, response.statusCode);
      if (response.statusCode !== 200) throw statusError(url, response);
      const declared = contentLength(response.headers);
      const tooLarge = () =>
        new KvmtestError('DOWNLOAD_FAILED', `${url} is larger than the ${maxBytes} bytes allowed for a text file (maxBytes)`);
      if (declared !== undefined && declared > maxBytes) {
        release(response.body);
        throw tooLarge();
      }
      const chunks: Buffer[] = [];
      let received = 0;
      for await (const chunk of chunksOf(response.body, idle)) {
        received += chunk.length;
        if (received > maxBytes) throw tooLarge();
        chunks.push(chunk);
      }
      checkComplete(received, declared);
      return Buffer.concat(chunks).toString('utf8');
    }),
  );
  return value;
}

/** Hex digest of a whole file, streamed. */
export async function hashFile(path: string, algorithm: Digest['algorithm']): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

// ---------------------------------------------------------------------------------------------- one attempt

interface RetryPolicy {
  url: string;
  retries: number;
  backoffMs: number;
  idleTimeoutMs: number;
  signal: AbortSignal | undefined;
  dispatcher: Dispatcher;
}

interface DownloadJob extends RetryPolicy {
  dest: string;
  partial: string;
  sidecar: string;
  algorithm: Digest['algorithm'];
  expected: Digest | undefined;
}

/** What this call knows about the partial file: the hash of its first `hashed` bytes. */
interface PartialState {
  hash?: Hash;
  hashed: number;
  resumed: boolean;
  total: number | undefined;
  resumedFrom: number;
}

/** Remembered next to the partial file, so that another attempt or process can resume safely. */
interface Sidecar {
  url: string;
  etag?: string;
  lastModified?: string;
  total?: number;
}

type Report = (progress: DownloadProgress, final?: boolean) => void;

/** One request; resolves with the size of the complete file, or throws an AttemptFailure or a final KvmtestError. */
async function attemptDownload(job: DownloadJob, state: PartialState, attempt: number, report: Report): Promise<number> {
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
  const written = await receive(job, state, body, idle, (received) =>
    report({ received: offset + received, total: state.total, resumedFrom: offset, attempt }),
  );
  checkComplete(written, contentLength(got));
  return offset + written;
}

/** Appends the body to the partial file, hashing as it goes; returns the bytes written. */
async function receive(job: DownloadJob, state: PartialState, body: Readable, idle: IdleTimer, onBytes: (n: number) => void): Promise<number> {
  let handle: FileHandle;
  try {
    handle = await open(job.partial, 'a');
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

/** The partial file restarts empty (the server sent the whole file): new hash, new validator. */
async function startFresh(job: DownloadJob, state: PartialState, headers: IncomingHttpHeaders, total: number | undefined): Promise<void> {
  await startOver(job, state);
  const sidecar: Sidecar = { url: job.url, etag: header(headers, 'etag'), lastModified: header(headers, 'last-modified'), total };
  await writeFile(job.sidecar, JSON.stringify(sidecar)).catch((error: unknown) => {
    throw hostIo(job.sidecar, error);
  });
}

async function startOver(job: DownloadJob, state: PartialState): Promise<void> {
  await writeFile(job.partial, '').catch((error: unknown) => {
    throw hostIo(job.partial, error);
  });
  await rm(job.sidecar, { force: true });
  state.hash = createHash(job.algorithm);
  state.hashed = 0;
  state.resumed = false;
}

async function discardPartial(job: DownloadJob): Promise<void> {
  await rm(job.partial, { force: true });
  await rm(job.sidecar, { force: true });
}

function get(policy: RetryPolicy, headers: Record<string, string>, signal: AbortSignal): Promise<Dispatcher.ResponseData> {
  return request(policy.url, {
    method: 'GET',
    headers: { 'accept-encoding': 'identity', 'user-agent': 'kvmtest', ...headers },
    signal,
    dispatcher: policy.dispatcher,
    maxRedirections: MAX_REDIRECTIONS,
    // our idle timer covers both, and does not count time spent hashing or writing
    headersTimeout: 0,
    bodyTimeout: 0,
  });
}

/** Body chunks, each awaited under the idle timer; the body is released whenever the consumer stops. */
async function* chunksOf(body: Readable, idle: IdleTimer): AsyncGenerator<Buffer> {
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
function release(body: Readable): void {
  body.on('error', () => {});
  body.destroy();
}

function checkComplete(received: number, declared: number | undefined): void {
  if (declared !== undefined && received < declared) {
    throw new AttemptFailure('retry', `the connection closed after ${received} of ${declared} bytes`);
  }
}

/** Final for 404/410 and other 4xx, or for too many redirects; retryable for 408, 429 and 5xx. */
function statusError(url: string, response: Dispatcher.ResponseData): Error {
  const { statusCode: status, headers } = response;
  release(response.body);
  const described = `HTTP ${status}${STATUS_CODES[status] ? ` ${STATUS_CODES[status]}` : ''}`;
  if (status === 404 || status === 410) {
    return new KvmtestError('DOWNLOAD_NOT_FOUND', `${url} answered ${described}: check the URL (the release may have moved or been removed)`);
  }
  if (status === 408 || status === 429 || status >= 500) {
    return new AttemptFailure('retry', `${url} answered ${described}`, { retryAfterMs: retryAfter(headers) });
  }
  if (status >= 300 && status < 400) {
    const location = header(headers, 'location') ?? '?';
    return new KvmtestError('DOWNLOAD_FAILED', `${url} still redirects (${described} to ${location}) after ${MAX_REDIRECTIONS} redirections`);
  }
  return new KvmtestError('DOWNLOAD_FAILED', `${url} answered ${described}`);
}

// ---------------------------------------------------------------------------------------------- retries

/** Why one attempt failed, when another may succeed; `restart` means the partial file was emptied first. */
class AttemptFailure extends Error {
  readonly retryAfterMs: number | undefined;
  constructor(
    readonly kind: 'retry' | 'timeout' | 'restart',
    message: string,
    options: { cause?: unknown; retryAfterMs?: number } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** `what` starts every message ("Download of <url>"); `afterAbort` is added to the ABORTED one. */
async function withRetries<T>(
  policy: RetryPolicy,
  what: string,
  run: (attempt: number) => Promise<T>,
  afterAbort = '',
): Promise<{ value: T; attempts: number }> {
  let failures = 0;
  let restarts = 0;
  for (let attempt = 1; ; attempt++) {
    if (policy.signal?.aborted) throw aborted(`${what} aborted${afterAbort}`, policy.signal);
    try {
      return { value: await run(attempt), attempts: attempt };
    } catch (error) {
      if (policy.signal?.aborted) throw aborted(`${what} aborted${afterAbort}`, policy.signal);
      const failure = asAttemptFailure(error, what);
      if (failure.kind === 'restart' && restarts < FREE_RESTARTS) {
        restarts++;
        debug('%s: %s; starting over', what, failure.message);
        continue;
      }
      failures++;
      if (failures > policy.retries) throw exhausted(what, policy, attempt, failure);
      const delay = backoffDelay(failures, policy.backoffMs, failure.retryAfterMs);
      debug('%s: attempt %d failed (%s); retrying in %d ms', what, attempt, failure.message, Math.round(delay));
      try {
        await sleep(delay, undefined, policy.signal ? { signal: policy.signal } : {});
      } catch {
        throw aborted(`${what} aborted${afterAbort}`, policy.signal);
      }
    }
  }
}

/** Network trouble becomes an AttemptFailure; anything else ends the download. */
function asAttemptFailure(error: unknown, what: string): AttemptFailure {
  if (error instanceof AttemptFailure) return error;
  if (error instanceof KvmtestError) throw error;
  const code = networkCode(error);
  if (code) return new AttemptFailure('retry', describeError(error), { cause: error });
  throw new KvmtestError('DOWNLOAD_FAILED', `${what} failed: ${describeError(error)}`, { cause: error });
}

function networkCode(error: unknown): string | undefined {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code !== 'string') continue;
    if (RETRYABLE_CODES.has(code) || (code.startsWith('UND_ERR_') && !NON_RETRYABLE_UNDICI.has(code))) return code;
  }
  return undefined;
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as NodeJS.ErrnoException).code;
  const cause = error.cause instanceof Error ? ` (${describeError(error.cause)})` : '';
  return `${code && !error.message.includes(code) ? `${code}: ` : ''}${error.message}${cause}`;
}

function exhausted(what: string, policy: RetryPolicy, attempts: number, last: AttemptFailure): KvmtestError {
  if (last.kind === 'timeout') {
    return new KvmtestError(
      'DOWNLOAD_TIMEOUT',
      `${what} stalled: no data for ${policy.idleTimeoutMs} ms, ${attempts} attempt(s); check the network or proxy, or raise idleTimeoutMs`,
      { cause: last },
    );
  }
  return new KvmtestError('DOWNLOAD_FAILED', `${what} failed after ${attempts} attempt(s); last: ${last.message}`, {
    cause: last.cause ?? last,
  });
}

function aborted(message: string, signal: AbortSignal | undefined): KvmtestError {
  return new KvmtestError('ABORTED', message, { cause: signal?.reason });
}

/** Exponential with "equal jitter": between half and all of min(cap, base·2^(n-1)); a server's Retry-After wins if longer. */
export function backoffDelay(failures: number, baseMs: number, retryAfterMs?: number): number {
  const ceiling = Math.min(BACKOFF_CAP_MS, baseMs * 2 ** (failures - 1));
  const jittered = ceiling / 2 + (Math.random() * ceiling) / 2;
  return Math.max(jittered, Math.min(retryAfterMs ?? 0, RETRY_AFTER_CAP_MS));
}

function retryAfter(headers: IncomingHttpHeaders): number | undefined {
  const value = header(headers, 'retry-after');
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

// ---------------------------------------------------------------------------------------------- idle timeout

class IdleTimer {
  fired = false;
  #timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly ms: number,
    private readonly onIdle: () => void,
  ) {}
  arm(): void {
    this.disarm();
    this.#timer = setTimeout(() => {
      this.fired = true;
      this.onIdle();
    }, this.ms);
  }
  disarm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** Runs one attempt under its own abort signal (the caller's, plus the idle timer's); an idle abort becomes a timeout failure. */
async function withIdleTimeout<T>(policy: RetryPolicy, run: (signal: AbortSignal, idle: IdleTimer) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const idle = new IdleTimer(policy.idleTimeoutMs, () =>
    controller.abort(new Error(`no data for ${policy.idleTimeoutMs} ms`)),
  );
  const signal = policy.signal ? AbortSignal.any([policy.signal, controller.signal]) : controller.signal;
  try {
    return await run(signal, idle);
  } catch (error) {
    if (idle.fired && !policy.signal?.aborted) {
      throw new AttemptFailure('timeout', `no data from ${policy.url} for ${policy.idleTimeoutMs} ms`, { cause: error });
    }
    throw error;
  } finally {
    idle.disarm();
  }
}

// ---------------------------------------------------------------------------------------------- small helpers

function throttle(onProgress: DownloadOptions['onProgress']): Report {
  let last = -Infinity;
  return (progress, final = false) => {
    if (!onProgress) return;
    const now = performance.now();
    if (!final && now - last < PROGRESS_EVERY_MS) return;
    last = now;
    onProgress(progress);
  };
}

async function hashPrefix(path: string, bytes: number, algorithm: Digest['algorithm'], signal: AbortSignal | undefined): Promise<Hash> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(path, { end: bytes - 1, ...(signal ? { signal } : {}) })) {
    hash.update(chunk as Buffer);
  }
  return hash;
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw hostIo(path, error);
  }
}

async function readSidecar(path: string): Promise<Sidecar | undefined> {
  try {
    const value = JSON.parse(await readFile(path, 'utf8')) as Partial<Sidecar> | null;
    return typeof value?.url === 'string' ? (value as Sidecar) : undefined;
  } catch {
    return undefined; // missing or torn: the partial file cannot be trusted
  }
}

/** If-Range needs a strong validator: a strong ETag, else Last-Modified. */
function validatorOf(meta: Sidecar | undefined): string | undefined {
  if (meta?.etag && !meta.etag.startsWith('W/')) return meta.etag;
  return meta?.lastModified;
}

/** The 206 is for another version of the file than the one the partial file holds (a server ignoring If-Range). */
function changed(meta: Sidecar | undefined, headers: IncomingHttpHeaders, total: number | undefined): boolean {
  const etag = header(headers, 'etag');
  const lastModified = header(headers, 'last-modified');
  if (meta?.etag && etag) {
    if (meta.etag !== etag) return true;
  } else if (meta?.lastModified && lastModified && meta.lastModified !== lastModified) {
    return true;
  }
  return meta?.total !== undefined && total !== undefined && meta.total !== total;
}

function parseContentRange(value: string | string[] | undefined): { start: number; total: number | undefined } | undefined {
  const match = typeof value === 'string' ? /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value.trim()) : null;
  if (!match) return undefined;
  return { start: Number(match[1]), total: match[3] === '*' ? undefined : Number(match[3]) };
}

function contentLength(headers: IncomingHttpHeaders): number | undefined {
  const value = header(headers, 'content-length');
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function fsync(path: string, flags: 'r' | 'r+'): Promise<void> {
  const handle = await open(path, flags);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function hostIo(path: string, error: unknown): KvmtestError {
  return new KvmtestError('DOWNLOAD_FAILED', `Could not write the download to ${path}: ${describeError(error)}`, { cause: error });
}

let sharedDispatcher: Dispatcher | undefined;

/**
 * One dispatcher for every download, made on first use: an EnvHttpProxyAgent when a proxy variable is set,
 * else a plain Agent (the same routing, without undici 6's "EnvHttpProxyAgent is experimental" warning).
 */
function defaultDispatcher(): Dispatcher {
  const env = process.env;
  const proxied = Boolean(env.http_proxy || env.HTTP_PROXY || env.https_proxy || env.HTTPS_PROXY);
  sharedDispatcher ??= proxied ? new EnvHttpProxyAgent(FORWARD_PLAIN_HTTP) : new Agent();
  return sharedDispatcher;
}

/**
 * http:// URLs go to an http proxy as plain absolute-URI requests, like curl does, rather than through CONNECT, which
 * proxies such as Squid refuse by default for port 80; https:// still tunnels. (Passed on to undici's ProxyAgent; not in
 * the EnvHttpProxyAgent option types of undici 6.)
 */
const FORWARD_PLAIN_HTTP: EnvHttpProxyAgent.Options & { proxyTunnel: boolean } = { proxyTunnel: false };

// ---------------------------------------------------------------------------------------------- options

function downloadJob(options: DownloadOptions): DownloadJob {
  if (typeof options.dest !== 'string' || options.dest === '') invalid('dest', 'a non-empty path', options.dest);
  if (options.partial !== undefined && (typeof options.partial !== 'string' || options.partial === '')) {
    invalid('partial', 'a non-empty path', options.partial);
  }
  const expected = options.expected;
  if (expected !== undefined) {
    const length = (HEX_LENGTHS as Record<string, number | undefined>)[expected.algorithm];
    if (length === undefined) invalid('expected.algorithm', '"sha256" or "sha512"', expected.algorithm);
    if (typeof expected.hex !== 'string' || expected.hex.length !== length || !/^[0-9a-f]+$/i.test(expected.hex)) {
      invalid('expected.hex', `${length} hexadecimal digits`, expected.hex);
    }
  }
  const partial = options.partial ?? `${options.dest}.partial`;
  return {
    ...policyFrom(options),
    dispatcher: options.dispatcher ?? defaultDispatcher(),
    dest: options.dest,
    partial,
    sidecar: `${partial}.json`,
    algorithm: expected?.algorithm ?? 'sha256',
    expected,
  };
}

function policyFrom(options: {
  url: string;
  retries?: number;
  backoffMs?: number;
  idleTimeoutMs?: number;
  signal?: AbortSignal;
}): Omit<RetryPolicy, 'dispatcher'> {
  let protocol: string | undefined;
  try {
    protocol = new URL(options.url).protocol;
  } catch {
    // reported below
  }
  if (protocol !== 'http:' && protocol !== 'https:') invalid('url', 'an http(s) URL', options.url);
  const retries = options.retries ?? 4;
  const backoffMs = options.backoffMs ?? 500;
  const idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
  checkInteger('retries', retries, 0);
  checkInteger('backoffMs', backoffMs, 0);
  checkInteger('idleTimeoutMs', idleTimeoutMs, 1);
  return { url: options.url, retries, backoffMs, idleTimeoutMs, signal: options.signal };
}

function checkInteger(name: string, value: unknown, min: number): void {
  if (!Number.isSafeInteger(value) || (value as number) < min) {
    invalid(name, min === 0 ? 'a non-negative integer' : `an integer of at least ${min}`, value);
  }
}

function invalid(name: string, expected: string, value: unknown): never {
  throw new TypeError(`Expected the "${name}" option to be ${expected}, got ${JSON.stringify(value) ?? String(value)} (${typeof value})`);
}
