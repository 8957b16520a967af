import { rmSync } from 'node:fs';
import createDebug from 'debug';
import { onExit } from 'signal-exit';
import { type Registration, registerWithReaper } from '../reaper/client.js';

const debug = createDebug('kvmtest:registry');

/** What must go when this process goes: a QEMU (once started) and a private directory. */
interface Leftover {
  pid?: number;
  dir: string;
}

/** A machine being tracked: say when its QEMU started, and untrack it once it is cleaned up. */
export interface Tracked {
  /** Resolves once the reaper knows the directory: await it before starting QEMU. */
  readonly registered: Promise<void>;
  started(pid: number | undefined): void;
  untrack(): void;
}

const live = new Set<Leftover>();
let hooked = false;

/**
 * Tracks a machine twice over: exit, SIGINT or SIGTERM of this process stops its QEMU and removes its
 * files synchronously (signal-exit), and the shared reaper process does the same after a SIGKILL,
 * when this process can do nothing.
 */
export function track(name: string, dir: string): Tracked {
  const leftover: Leftover = { dir };
  live.add(leftover);
  if (!hooked) {
    hooked = true;
    onExit(() => {
      for (const item of live) reap(item);
      live.clear();
    });
  }
  // the directory is announced now, before QEMU exists: a SIGKILL in between still leaves nothing
  const registration: Promise<Registration> = registerWithReaper({ name, dir }).catch(() => ({ started() {}, remove() {} }));
  return {
    registered: registration.then(() => {}),
    started(pid) {
      leftover.pid = pid;
      if (pid) void registration.then((r) => r.started(pid));
    },
    untrack() {
      live.delete(leftover);
      void registration.then((r) => r.remove());
    },
  };
}

function reap(item: Leftover): void {
  debug('reaping pid %s dir %s', item.pid, item.dir);
  if (item.pid) {
    try {
      process.kill(item.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  rmSync(item.dir, { recursive: true, force: true });
}
