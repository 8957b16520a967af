// The idle timeout: an attempt fails when no byte arrives for idleTimeoutMs.
import type { RetryPolicy } from './options.js';
import { AttemptFailure } from './retry.js';

export class IdleTimer {
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
export async function withIdleTimeout<T>(policy: RetryPolicy, run: (signal: AbortSignal, idle: IdleTimer) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const idle = new IdleTimer(policy.idleTimeoutMs, () => controller.abort(new Error(`no data for ${policy.idleTimeoutMs} ms`)));
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
