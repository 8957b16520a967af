import { rmSync } from 'node:fs';
import { onExit } from 'signal-exit';
import createDebug from 'debug';

const debug = createDebug('kvmtest:registry');

/** What must go when this process goes: a QEMU pid and a private directory. */
export interface Leftover {
  pid(): number | undefined;
  dir: string;
}

const live = new Set<Leftover>();
let unhook: (() => void) | undefined;

/**
 * Tracks running guests so that exit, SIGINT or SIGTERM of the host process stops their QEMU and
 * removes their files (synchronously: nothing async runs at exit). SIGKILL is the reaper's job.
 */
export function track(leftover: Leftover): () => void {
  live.add(leftover);
  unhook ??= onExit(() => {
    for (const item of live) reap(item);
    live.clear();
  });
  return () => {
    live.delete(leftover);
  };
}

function reap(item: Leftover): void {
  const pid = item.pid();
  debug('reaping pid %s dir %s', pid, item.dir);
  if (pid) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  rmSync(item.dir, { recursive: true, force: true });
}
