import { describe, expect, it } from 'vitest';
import { OpLock } from '../../../src/machine/op-lock.js';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('operation lock', () => {
  it('close waits for a start in flight, then runs once', async () => {
    const lock = new OpLock('the guest');
    const order: string[] = [];
    const gate = deferred();
    const start = lock.run(async () => {
      order.push('start begins');
      await gate.promise;
      order.push('start ends');
    });
    let closes = 0;
    const closing = lock.close(async () => {
      closes++;
      order.push('stop');
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(order).toEqual(['start begins']);
    gate.resolve();
    await Promise.all([start, closing]);
    expect(order).toEqual(['start begins', 'start ends', 'stop']);
    expect(lock.close(async () => void closes++)).toBe(closing);
    await closing;
    expect(closes).toBe(1);
  });

  it('close still runs when the operation in flight fails', async () => {
    const lock = new OpLock('the guest');
    const failing = lock.run(async () => {
      throw new RangeError('boom');
    });
    let stopped = false;
    await lock.close(async () => void (stopped = true));
    await expect(failing).rejects.toThrow('boom');
    expect(stopped).toBe(true);
  });

  it('a start or save after close began fails with GUEST_DISPOSED and never runs', async () => {
    const lock = new OpLock('the guest');
    const closing = lock.close(async () => {});
    expect(lock.closed).toBe(true);
    let ran = false;
    await expect(lock.run(async () => void (ran = true))).rejects.toMatchObject({ code: 'GUEST_DISPOSED' });
    await closing;
    await expect(lock.run(async () => void (ran = true))).rejects.toMatchObject({ code: 'GUEST_DISPOSED' });
    expect(ran).toBe(false);
  });

  it('operations run one at a time, in order', async () => {
    const lock = new OpLock('the guest');
    const order: number[] = [];
    let active = 0;
    await Promise.all(
      [1, 2, 3].map((n) =>
        lock.run(async () => {
          active++;
          expect(active).toBe(1);
          await new Promise((r) => setTimeout(r, 5 * (4 - n)));
          order.push(n);
          active--;
        }),
      ),
    );
    expect(order).toEqual([1, 2, 3]);
  });
});
