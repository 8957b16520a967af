import { kvmtestError } from '../errors.js';

/**
 * One operation at a time on a machine (a start, a save), and a close that waits for the one in
 * flight: once close() began, every new operation fails with GUEST_DISPOSED.
 */
export class OpLock {
  private tail: Promise<unknown> = Promise.resolve();
  private closing: Promise<void> | undefined;

  constructor(private readonly what: string) {}

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Runs op after the operations queued before it; refused once close() began. */
  run<T>(op: () => Promise<T>): Promise<T> {
    if (this.closing) return Promise.reject(kvmtestError('GUEST_DISPOSED', `${this.what} is being stopped; start a new one`));
    const result = this.tail.then(op);
    this.tail = result.catch(() => {});
    return result;
  }

  /** Runs finish once, after the operation in flight; later calls return the same promise. */
  close(finish: () => Promise<void>): Promise<void> {
    this.closing ??= this.tail.then(finish);
    return this.closing;
  }
}
