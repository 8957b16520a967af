import { describe, expect, it } from 'vitest';
import { MemoryBudget } from '../../../src/matrix/concurrency.js';
import { runPool } from '../../../src/matrix/schedule.js';

describe('MemoryBudget and runPool', () => {
  it('waits instead of overcommitting, and lets one big guest run alone', async () => {
    const budget = new MemoryBudget(3000);
    let running = 0;
    let peakMiB = 0;
    let peakRunning = 0;
    const sizes = [1000, 1000, 1000, 1000, 5000, 1000, 1000, 1000];
    const results = await runPool(
      sizes,
      { concurrency: 8, memory: budget, footprint: (s) => s },
      async (size) => {
        running++;
        peakRunning = Math.max(peakRunning, running);
        peakMiB = Math.max(peakMiB, budget.inUseMiB);
        await new Promise((r) => setTimeout(r, 5));
        running--;
        return size * 2;
      },
      () => -1,
    );
    expect(results).toEqual(sizes.map((s) => s * 2));
    expect(peakRunning).toBe(3);
    expect(peakMiB).toBeLessThanOrEqual(5000);
  });

  it('skips what has not started once the signal aborts', async () => {
    const controller = new AbortController();
    const results = await runPool(
      [1, 2, 3, 4],
      { concurrency: 1, memory: new MemoryBudget(10), footprint: () => 1, signal: controller.signal },
      async (n) => {
        if (n === 2) controller.abort();
        return `ran ${n}`;
      },
      (n) => `skipped ${n}`,
    );
    expect(results).toEqual(['ran 1', 'ran 2', 'skipped 3', 'skipped 4']);
  });
});
