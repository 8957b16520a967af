import { describe, expect, it } from 'vitest';
import { CreditWindow } from '../../../src/agent/credit.js';

describe('credit window', () => {
  it('lets a sender run up to the window, then waits for consumed bytes', async () => {
    const credit = new CreditWindow(100);
    await credit.take(60);
    await credit.take(40);
    let third = false;
    const pending = credit.take(10).then(() => (third = true));
    await Promise.resolve();
    expect(third).toBe(false);
    credit.grant(5);
    await new Promise((r) => setImmediate(r));
    expect(third).toBe(false);
    credit.grant(5);
    await pending;
    expect(credit.unacknowledged).toBe(100);
  });

  it('a closed window never holds a sender; an over-grant does not go below zero', async () => {
    const credit = new CreditWindow(10);
    await credit.take(10);
    const waiting = credit.take(10);
    credit.close();
    await waiting;
    credit.grant(1000);
    expect(credit.unacknowledged).toBe(0);
  });
});
