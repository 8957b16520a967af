import lockfile from 'proper-lockfile';

/** How a lock is held and waited for: a holder that stops refreshing it for `staleMs` is presumed dead. */
export interface LockTiming {
  staleMs: number;
  updateMs: number;
  retries: number;
  minWaitMs: number;
  maxWaitMs: number;
}

/**
 * Runs fn holding the lock `${path}.lock` (proper-lockfile: an mkdir, refreshed while held), so
 * processes sharing a cache build or download a thing once while the others wait.
 */
export async function withLock<T>(path: string, timing: LockTiming, fn: () => Promise<T>): Promise<T> {
  const release = await lockfile.lock(path, {
    realpath: false,
    lockfilePath: `${path}.lock`,
    stale: timing.staleMs,
    update: timing.updateMs,
    retries: { retries: timing.retries, minTimeout: timing.minWaitMs, maxTimeout: timing.maxWaitMs },
  });
  try {
    return await fn();
  } finally {
    await release();
  }
}
