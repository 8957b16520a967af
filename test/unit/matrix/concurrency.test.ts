import { describe, expect, it } from 'vitest';
import { decideConcurrency } from '../../../src/matrix/concurrency.js';

const GiB = 1024;

describe('decideConcurrency', () => {
  const host = (cpus: number, freeGiB: number, totalGiB = 32) => ({ cpus, freeMemMiB: freeGiB * GiB, totalMemMiB: totalGiB * GiB });
  const guests = (n: number, cpus: number, memoryMiB: number) => Array.from({ length: n }, () => ({ cpus, memoryMiB }));

  it('fits the CPUs: this 2-core host runs one 2-vCPU guest, two 1-vCPU guests', () => {
    expect(decideConcurrency('auto', host(2, 20, 24), guests(3, 2, 1024)).concurrency).toBe(1);
    expect(decideConcurrency('auto', host(2, 20, 24), guests(3, 1, 1024)).concurrency).toBe(2);
    expect(decideConcurrency('auto', host(16, 60, 64), guests(12, 2, 1024)).concurrency).toBe(8);
  });

  it('fits the free memory with each guest counted whole, never below one', () => {
    // 8 GiB free - 3.2 GiB reserve (10% of 32) = 4.8 GiB for 4 GiB + 256 MiB guests: one
    const decision = decideConcurrency('auto', host(32, 8), guests(8, 1, 4 * GiB));
    expect(decision.concurrency).toBe(1);
    expect(decision.reason).toMatch(/MiB free/);
    expect(decideConcurrency('auto', host(32, 1), guests(2, 1, 4 * GiB)).concurrency).toBe(1);
  });

  it('never exceeds the number of cells, and takes a number as asked', () => {
    expect(decideConcurrency('auto', host(64, 200, 256), guests(3, 1, 512)).concurrency).toBe(3);
    expect(decideConcurrency(6, host(2, 20), guests(8, 2, 1024)).concurrency).toBe(6);
    expect(decideConcurrency(6, host(2, 20), guests(2, 2, 1024)).concurrency).toBe(2);
  });
});
