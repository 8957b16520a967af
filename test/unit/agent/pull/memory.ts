// What a transfer costs the host process: time, peak RSS and heap (sampled), and what stays after a forced GC.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const MiB = 1024 * 1024;
setFlagsFromString('--expose_gc');
/** V8's gc(), reached without --expose-gc on the command line. */
const gc = runInNewContext('gc') as () => void;

export interface Measured<T> {
  value: T;
  ms: number;
  /** Peak growth while it ran, garbage included (V8 collects when it sees fit). */
  peakRssMiB: number;
  peakHeapMiB: number;
  /** The most that stayed after a forced GC (once a second, and at the end): what it holds, not what it dropped. */
  heldRssMiB: number;
  heldHeapMiB: number;
}

export async function measured<T>(run: () => Promise<T>): Promise<Measured<T>> {
  gc();
  const start = process.memoryUsage();
  const peak = { rss: start.rss, heap: start.heapUsed };
  const held = { rss: start.rss, heap: start.heapUsed };
  const collect = () => {
    gc();
    const now = process.memoryUsage();
    held.rss = Math.max(held.rss, now.rss);
    held.heap = Math.max(held.heap, now.heapUsed);
  };
  let ticks = 0;
  const timer = setInterval(() => {
    const now = process.memoryUsage();
    peak.rss = Math.max(peak.rss, now.rss);
    peak.heap = Math.max(peak.heap, now.heapUsed);
    if (++ticks % 50 === 0) collect();
  }, 20);
  const t0 = performance.now();
  try {
    const value = await run();
    const ms = performance.now() - t0;
    collect();
    const growth = (to: number, from: number) => Math.max(0, to - from) / MiB;
    return {
      value,
      ms,
      peakRssMiB: growth(peak.rss, start.rss),
      peakHeapMiB: growth(peak.heap, start.heapUsed),
      heldRssMiB: growth(held.rss, start.rss),
      heldHeapMiB: growth(held.heap, start.heapUsed),
    };
  } finally {
    clearInterval(timer);
  }
}

/** One line for the test's output. */
export function describeCost(m: Measured<unknown>): string {
  return `${(m.ms / 1000).toFixed(2)} s; host RSS +${m.peakRssMiB.toFixed(0)} MiB at peak (+${m.heldRssMiB.toFixed(0)} MiB held after GC), heap +${m.peakHeapMiB.toFixed(0)} MiB at peak (+${m.heldHeapMiB.toFixed(1)} MiB held)`;
}
