import { describe, expect, it } from 'vitest';
import type { Guest } from '../../../src/guest/guest.js';
import { GuestPool } from '../../../src/pool/pool.js';

/** Stand-ins for guests: the pool only starts, hands out and disposes them. */
function factory(options: { failAt?: number; delayMs?: number } = {}) {
  const made: { name: string; disposed: boolean }[] = [];
  const make = async (): Promise<Guest> => {
    const n = made.length + 1;
    const entry = { name: `g${n}`, disposed: false };
    made.push(entry);
    await new Promise((r) => setTimeout(r, options.delayMs ?? 5));
    if (options.failAt === n) throw Object.assign(new Error(`g${n} failed`), { code: 'BOOT_TIMEOUT' });
    return {
      info: { name: entry.name },
      dispose: async () => {
        entry.disposed = true;
      },
    } as unknown as Guest;
  };
  return { made, make };
}

describe('GuestPool', () => {
  it('hands out a guest made ahead and starts its replacement at once', async () => {
    const { made, make } = factory();
    const pool = new GuestPool(make).warm();
    expect(made).toHaveLength(1);
    const first = await pool.take();
    expect(first.info.name).toBe('g1');
    expect(made).toHaveLength(2); // the replacement is on its way
    expect((await pool.take()).info.name).toBe('g2');
    await pool.dispose();
    expect(made.map((m) => m.disposed)).toEqual([false, false, true]); // handed-out guests are the takers'
  });

  it('dispose() also disposes a guest still starting, and take() after it is GUEST_DISPOSED', async () => {
    const { made, make } = factory({ delayMs: 50 });
    const pool = new GuestPool(make, { size: 2 }).warm();
    await pool.dispose();
    expect(made.map((m) => m.disposed)).toEqual([true, true]);
    await expect(pool.take()).rejects.toMatchObject({ code: 'GUEST_DISPOSED' });
    await pool.dispose(); // twice is fine
  });

  it('a guest that fails to start fails its taker only; the next take gets a new one', async () => {
    const { make } = factory({ failAt: 1 });
    const pool = new GuestPool(make).warm();
    await expect(pool.take()).rejects.toThrow('g1 failed');
    expect((await pool.take()).info.name).toBe('g2');
    await pool.dispose();
  });

  it('size 0 makes each guest on take(); a bad size is INVALID_OPTION', async () => {
    const { made, make } = factory();
    const pool = new GuestPool(make, { size: 0 }).warm();
    expect(made).toHaveLength(0);
    expect((await pool.take()).info.name).toBe('g1');
    expect(made).toHaveLength(1);
    expect(() => new GuestPool(make, { size: -1 })).toThrowError(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });
});
