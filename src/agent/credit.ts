import { CREDIT_WINDOW_BYTES } from './protocol.js';

/**
 * The host's side of the credit rule for one request's stdin or push data: at most `window` bytes
 * sent and not yet acknowledged by the agent's `consumed` frames. Senders are sequential (one
 * Writable, one push loop), so waiters are woken all at once and re-check.
 */
export class CreditWindow {
  private inFlight = 0;
  private closed = false;
  private wakers: (() => void)[] = [];

  constructor(private readonly window = CREDIT_WINDOW_BYTES) {}

  /** Waits until n more bytes fit (a chunk larger than the window goes alone); at once when closed. */
  async take(n: number): Promise<void> {
    while (!this.closed && this.inFlight > 0 && this.inFlight + n > this.window) {
      await new Promise<void>((resolve) => this.wakers.push(resolve));
    }
    this.inFlight += n;
  }

  /** A `consumed` frame: the agent took n bytes off its queue. */
  grant(n: number): void {
    this.inFlight = Math.max(0, this.inFlight - n);
    this.wake();
  }

  /** The request ended: nobody waits for credit any more. */
  close(): void {
    this.closed = true;
    this.wake();
  }

  get unacknowledged(): number {
    return this.inFlight;
  }

  private wake(): void {
    for (const resolve of this.wakers.splice(0)) resolve();
  }
}
