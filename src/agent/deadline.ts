import { type KvmtestError, kvmtestError } from '../errors.js';
import { parseDuration } from '../util/units.js';

/** How long a push, pull or mount may take, and the caller's way to stop it. */
export interface TransferOptions {
  /** Stops it (ABORTED); what it made is removed (a pull) or detached (a disk). */
  signal?: AbortSignal;
  /** '10m', '90s' or milliseconds: past it, TRANSFER_TIMEOUT, handled as an abort. */
  timeout?: string | number;
}

/** The reasons our own deadlines abort with, told apart from a caller's reason that happens to be coded. */
const deadlines = new WeakSet<object>();

/**
 * The caller's signal and the transfer's own deadline as one signal (undefined when there is neither):
 * a deadline aborts it with a TRANSFER_TIMEOUT error as its reason. `done()` clears the timer.
 */
export function transferSignal(what: string, options: TransferOptions): { signal: AbortSignal | undefined; done(): void } {
  const { signal, timeout } = options;
  if (timeout === undefined) return { signal, done: () => {} };
  const ms = parseDuration(timeout);
  const controller = new AbortController();
  const timer = setTimeout(() => {
    const reason = kvmtestError('TRANSFER_TIMEOUT', `the ${what} did not finish within ${ms} ms (the timeout option)`);
    deadlines.add(reason);
    controller.abort(reason);
  }, ms);
  timer.unref();
  return { signal: signal ? AbortSignal.any([signal, controller.signal]) : controller.signal, done: () => clearTimeout(timer) };
}

/** The coded error for a fired signal: the deadline's TRANSFER_TIMEOUT, or ABORTED carrying the caller's reason. */
export function abortError(what: string, signal: AbortSignal): KvmtestError {
  const reason: unknown = signal.reason;
  if (typeof reason === 'object' && reason !== null && deadlines.has(reason)) return reason as KvmtestError;
  return kvmtestError('ABORTED', `the ${what} was aborted`, { cause: reason });
}

/** Rejects with abortError once the signal fires (never without one); `off()` removes its listener. */
export function whenAborted(what: string, signal: AbortSignal | undefined): { aborted: Promise<never>; off(): void } {
  if (!signal) return { aborted: new Promise<never>(() => {}), off: () => {} };
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(abortError(what, signal));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => {});
  return { aborted, off: () => signal.removeEventListener('abort', onAbort) };
}
