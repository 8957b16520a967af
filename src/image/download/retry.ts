// Retrying attempts: which failures are worth another try, backoff, and the final error when none is left.
import { setTimeout as sleep } from 'node:timers/promises';
import createDebug from 'debug';
import { KvmtestError, kvmtestError } from '../../errors.js';
import type { RetryPolicy } from './options.js';

const debug = createDebug('kvmtest:download');

const BACKOFF_CAP_MS = 10_000;
/** A server's Retry-After is honoured up to this long. */
const RETRY_AFTER_CAP_MS = 60_000;
/** Start-overs caused by the server (file changed, odd Content-Range, 416) that do not use up a retry. */
const FREE_RESTARTS = 2;
const RETRYABLE_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENETUNREACH', 'ENETDOWN', 'EHOSTUNREACH']);
/** undici's own errors are network trouble, except the ones that mean we called it wrong. */
const NON_RETRYABLE_UNDICI = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED', 'UND_ERR_INVALID_RETURN_VALUE']);

/** Why one attempt failed, when another may succeed; `restart` means the partial file was emptied first. */
export class AttemptFailure extends Error {
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
export async function withRetries<T>(policy: RetryPolicy, what: string, run: (attempt: number) => Promise<T>, afterAbort = ''): Promise<{ value: T; attempts: number }> {
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

/** Exponential with "equal jitter": between half and all of min(cap, base·2^(n-1)); a server's Retry-After wins if longer. */
export function backoffDelay(failures: number, baseMs: number, retryAfterMs?: number): number {
  const ceiling = Math.min(BACKOFF_CAP_MS, baseMs * 2 ** (failures - 1));
  const jittered = ceiling / 2 + (Math.random() * ceiling) / 2;
  return Math.max(jittered, Math.min(retryAfterMs ?? 0, RETRY_AFTER_CAP_MS));
}

/** Network trouble becomes an AttemptFailure; anything else ends the download. */
function asAttemptFailure(error: unknown, what: string): AttemptFailure {
  if (error instanceof AttemptFailure) return error;
  if (error instanceof KvmtestError) throw error;
  const code = networkCode(error);
  if (code) return new AttemptFailure('retry', describeError(error), { cause: error });
  throw kvmtestError('DOWNLOAD_FAILED', `${what} failed: ${describeError(error)}`, { cause: error });
}

function networkCode(error: unknown): string | undefined {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code !== 'string') continue;
    if (RETRYABLE_CODES.has(code) || (code.startsWith('UND_ERR_') && !NON_RETRYABLE_UNDICI.has(code))) return code;
  }
  return undefined;
}

export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as NodeJS.ErrnoException).code;
  const cause = error.cause instanceof Error ? ` (${describeError(error.cause)})` : '';
  return `${code && !error.message.includes(code) ? `${code}: ` : ''}${error.message}${cause}`;
}

function exhausted(what: string, policy: RetryPolicy, attempts: number, last: AttemptFailure): KvmtestError {
  if (last.kind === 'timeout') {
    return kvmtestError('DOWNLOAD_TIMEOUT', `${what} stalled: no data for ${policy.idleTimeoutMs} ms, ${attempts} attempt(s); check the network or proxy, or raise idleTimeoutMs`, { cause: last });
  }
  return kvmtestError('DOWNLOAD_FAILED', `${what} failed after ${attempts} attempt(s); last: ${last.message}`, {
    cause: last.cause ?? last,
  });
}

function aborted(message: string, signal: AbortSignal | undefined): KvmtestError {
  return kvmtestError('ABORTED', message, { cause: signal?.reason });
}
