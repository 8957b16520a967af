import { readFileSync, rmSync } from 'node:fs';
import type { ReapTarget } from './protocol.js';

/** True when pid is a live process whose command line names this guest (not a reused pid). Linux /proc. */
export function isGuestProcess(target: Pick<ReapTarget, 'pid' | 'name'>): boolean {
  try {
    return readFileSync(`/proc/${target.pid}/cmdline`, 'utf8').split('\0').some((arg) => arg === target.name || arg.startsWith(`${target.name},`));
  } catch {
    return false;
  }
}

/** Stops an orphaned guest: SIGTERM, SIGKILL after `graceMs`, then deletes its directory. */
export async function reapTarget(target: ReapTarget, graceMs = 1000): Promise<void> {
  if (isGuestProcess(target)) {
    signal(target.pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (isGuestProcess(target) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (isGuestProcess(target)) signal(target.pid, 'SIGKILL');
  }
  rmSync(target.dir, { recursive: true, force: true });
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // gone already
  }
}
