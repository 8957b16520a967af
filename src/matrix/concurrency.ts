/** What a guest costs the host beyond its RAM: QEMU itself, TCG's translation cache, page tables. */
export const QEMU_OVERHEAD_MIB = 256;

export interface HostCapacity {
  cpus: number;
  /** Memory the host can give without swapping (MemAvailable). */
  freeMemMiB: number;
  totalMemMiB: number;
}

export interface GuestCost {
  cpus: number;
  memoryMiB: number;
}

export interface ConcurrencyDecision {
  concurrency: number;
  /** Memory the running guests may hold between them (guest RAM + QEMU overhead each). */
  memoryBudgetMiB: number;
  reason: string;
}

/** Memory kept for the host itself: 10% of RAM, at least 512 MiB. */
export function hostReserveMiB(host: HostCapacity): number {
  return Math.max(512, Math.round(host.totalMemMiB * 0.1));
}

export function guestFootprintMiB(cost: GuestCost): number {
  return cost.memoryMiB + QEMU_OVERHEAD_MIB;
}

/**
 * How many cells run at once. 'auto': as many of the largest guests as the host's cores hold
 * (every vCPU may keep a core busy, under TCG always) and as its free memory holds with the
 * guests' full RAM counted, never fewer than one. A number is taken as given (at least one);
 * memory is still never overcommitted, the scheduler waits instead (see MemoryBudget). Pure.
 */
export function decideConcurrency(requested: 'auto' | number, host: HostCapacity, guests: GuestCost[]): ConcurrencyDecision {
  const memoryBudgetMiB = Math.max(0, host.freeMemMiB - hostReserveMiB(host));
  const largest = guests.reduce((a, g) => ({ cpus: Math.max(a.cpus, g.cpus), memoryMiB: Math.max(a.memoryMiB, g.memoryMiB) }), { cpus: 1, memoryMiB: 64 });
  const byCpu = Math.max(1, Math.floor(host.cpus / largest.cpus));
  const byMemory = Math.max(1, Math.floor(memoryBudgetMiB / guestFootprintMiB(largest)));
  const cells = Math.max(1, guests.length);
  if (requested !== 'auto') {
    return { concurrency: Math.max(1, Math.min(Math.floor(requested), cells)), memoryBudgetMiB, reason: `concurrency ${requested} as asked` };
  }
  const concurrency = Math.min(byCpu, byMemory, cells);
  const limit = byCpu <= byMemory ? `${host.cpus} host CPUs / ${largest.cpus} vCPUs` : `${memoryBudgetMiB} MiB free / ${guestFootprintMiB(largest)} MiB per guest`;
  return { concurrency, memoryBudgetMiB, reason: `auto: ${limit}` };
}

/**
 * A weighted semaphore over memory: a guest starts only when its footprint fits in what the
 * running ones leave, except that one guest may always run alone (else a big cell would wait forever).
 */
export class MemoryBudget {
  private used = 0;
  private running = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(readonly totalMiB: number) {}

  async acquire(needMiB: number, signal?: AbortSignal): Promise<() => void> {
    while (!this.fits(needMiB)) {
      signal?.throwIfAborted();
      let onAbort: (() => void) | undefined;
      await new Promise<void>((wake) => {
        this.waiters.push(wake);
        onAbort = wake;
        signal?.addEventListener('abort', onAbort, { once: true });
      });
      // woken by a release: the next wait adds its own listener
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
    this.used += needMiB;
    this.running += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used -= needMiB;
      this.running -= 1;
      for (const wake of this.waiters.splice(0)) wake();
    };
  }

  get inUseMiB(): number {
    return this.used;
  }

  private fits(need: number): boolean {
    return this.running === 0 || this.used + need <= this.totalMiB;
  }
}
