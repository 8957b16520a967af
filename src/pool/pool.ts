import createDebug from 'debug';
import { kvmtestError } from '../errors.js';
import type { Guest } from '../guest/guest.js';

const debug = createDebug('kvmtest:pool');

export interface PoolOptions {
  /** Guests kept ready ahead of take(); default 1 (each one is a running QEMU). */
  size?: number;
}

/**
 * Keeps fresh guests ready: take() hands out one that is already running (and starts making its
 * replacement), so a test waits for none of the restore. Every guest it made is either handed out
 * (then the taker disposes it) or disposed by dispose(), even one still starting.
 */
export class GuestPool implements AsyncDisposable {
  private readonly size: number;
  /** Guests the pool owns (running or still starting); one taken is the taker's. */
  private readonly ready: Promise<Guest>[] = [];
  private closed = false;

  constructor(
    private readonly make: () => Promise<Guest>,
    options: PoolOptions = {},
  ) {
    const size = options.size ?? 1;
    if (!Number.isInteger(size) || size < 0 || size > 64) throw kvmtestError('INVALID_OPTION', `Expected the "size" option to be a whole number from 0 to 64, got ${String(size)}`);
    this.size = size;
  }

  /** Starts filling the pool now (take() also does). */
  warm(): this {
    this.fill();
    return this;
  }

  /** A fresh guest: one made ahead when there is one, else made now. Its replacement starts at once. */
  async take(): Promise<Guest> {
    if (this.closed) throw kvmtestError('GUEST_DISPOSED', 'the guest pool was disposed');
    const next = this.ready.shift() ?? this.start();
    this.fill();
    const guest = await next;
    debug('handed out %s', guest.info.name);
    return guest;
  }

  /** Disposes every guest not handed out, those still starting included. Safe to call twice. */
  async dispose(): Promise<void> {
    this.closed = true;
    await Promise.all(this.ready.splice(0).map((p) => p.then((g) => g.dispose()).catch(() => {})));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  private fill(): void {
    while (!this.closed && this.ready.length < this.size) this.ready.push(this.start());
  }

  private start(): Promise<Guest> {
    const made = this.make();
    // a failure reaches the taker of this guest, not the process as an unhandled rejection
    made.catch((error: unknown) => debug('a pooled guest failed to start: %s', (error as Error).message));
    return made;
  }
}
