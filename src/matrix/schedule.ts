import type { MemoryBudget } from './concurrency.js';

export interface PoolOptions<T> {
  concurrency: number;
  memory: MemoryBudget;
  /** MiB the item holds while it runs. */
  footprint: (item: T) => number;
  signal?: AbortSignal;
}

/**
 * Runs work for each item, at most `concurrency` at once and never more memory than the budget
 * (waiting instead). Items not started when the signal aborts get `skip` instead. Results keep
 * the items' order. `work` must not throw: a cell's failure is its result.
 */
export async function runPool<T, R>(items: readonly T[], options: PoolOptions<T>, work: (item: T) => Promise<R>, skip: (item: T) => R): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const index = next++;
      const item = items[index]!;
      if (options.signal?.aborted) {
        results[index] = skip(item);
        continue;
      }
      let release: (() => void) | undefined;
      try {
        release = await options.memory.acquire(options.footprint(item), options.signal);
      } catch {
        results[index] = skip(item);
        continue;
      }
      try {
        results[index] = await work(item);
      } finally {
        release();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency, items.length)) }, lane));
  return results;
}
