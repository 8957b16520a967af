/**
 * The reaper's wire protocol: JSON lines over a unix socket. A client (a process running guests)
 * first names its temp root, then tells the reaper about each guest: its directory as soon as it
 * exists (before QEMU starts), QEMU's pid once it runs (the same `add` again, with the pid). When
 * the client's connection closes without removing a guest (the client died, even by SIGKILL), the
 * reaper stops that QEMU and deletes its directory.
 */
export interface ReapTarget {
  /** QEMU's pid (once started) and its -name, checked against /proc/<pid>/cmdline so a reused pid is never killed. */
  pid?: number;
  name: string;
  /** The guest's private directory: overlay, seed, sockets, console log. A direct child of the client's temp root. */
  dir: string;
}

export type ClientMessage = { t: 'root'; path: string } | { t: 'add'; id: number; target: ReapTarget } | { t: 'remove'; id: number };

export type ReaperMessage = { t: 'hello'; pid: number };

/** Where the reaper listens, and its lock: one reaper per cache directory (per user). */
export function reaperPaths(cache: string): { socket: string; lock: string; log: string } {
  return { socket: `${cache}/reaper.sock`, lock: `${cache}/reaper`, log: `${cache}/reaper.log` };
}
