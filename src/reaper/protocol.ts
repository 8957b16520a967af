/**
 * The reaper's wire protocol: JSON lines over a unix socket. A client (a process running guests)
 * tells the reaper about each guest; when the client's connection closes without removing a guest
 * (the client died, even by SIGKILL), the reaper stops that QEMU and deletes its directory.
 */
export interface ReapTarget {
  /** QEMU's pid and its -name, checked against /proc/<pid>/cmdline so a reused pid is never killed. */
  pid: number;
  name: string;
  /** The guest's private directory: overlay, seed, sockets, console log. */
  dir: string;
}

export type ClientMessage = { t: 'add'; id: number; target: ReapTarget } | { t: 'remove'; id: number };

export type ReaperMessage = { t: 'hello'; pid: number };

/** Where the reaper listens, and its lock: one reaper per cache directory (per user). */
export function reaperPaths(cache: string): { socket: string; lock: string; log: string } {
  return { socket: `${cache}/reaper.sock`, lock: `${cache}/reaper`, log: `${cache}/reaper.log` };
}
