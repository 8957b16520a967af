import { existsSync, lstatSync, readFileSync, rmSync } from 'node:fs';
import { checkTarget, type Refusal } from './guard.js';
import type { ReapTarget } from './protocol.js';

/** True when pid is a live process whose command line names this guest (not a reused pid). Linux /proc. */
export function isGuestProcess(target: Pick<ReapTarget, 'pid' | 'name'>): boolean {
  if (target.pid === undefined) return false;
  try {
    return readFileSync(`/proc/${target.pid}/cmdline`, 'utf8')
      .split('\0')
      .some((arg) => arg === target.name || arg.startsWith(`${target.name},`));
  } catch {
    return false;
  }
}

/**
 * Stops an orphaned guest: SIGTERM, SIGKILL after `graceMs`, then deletes its directory if it is
 * still a real directory of this user's directly inside one of `roots`. Returns why not, if it did not delete.
 */
export async function reapTarget(target: ReapTarget, roots: Iterable<string>, graceMs = 1000): Promise<Refusal> {
  if (isGuestProcess(target)) {
    signal(target.pid!, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (isGuestProcess(target) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (isGuestProcess(target)) signal(target.pid!, 'SIGKILL');
  }
  // gone already (the client cleaned up, then died before saying so): nothing to refuse
  if (!existsSync(target.dir) && !isLink(target.dir)) return undefined;
  // checked again now: the path may have been swapped for a link since it was registered
  const refusal = checkTarget(target, roots);
  if (refusal === undefined) rmSync(target.dir, { recursive: true, force: true });
  return refusal;
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // gone already
  }
}
