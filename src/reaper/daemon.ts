import { appendFileSync, chmodSync, mkdirSync, rmSync } from 'node:fs';
import { basename, isAbsolute } from 'node:path';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import lockfile from 'proper-lockfile';
import { reapTarget } from './kill.js';
import { reaperPaths, type ClientMessage, type ReapTarget, type ReaperMessage } from './protocol.js';

export interface DaemonOptions {
  cache: string;
  /** Exit after this long with no client connected (default 30 s). */
  idleMs?: number;
}

/**
 * The reaper: one per cache directory, shared by every process that runs guests. It holds what
 * each connection registered and reaps what a closed connection left. It takes a lock before it
 * binds, so concurrent starts end with one reaper; it exits when idle.
 */
export async function runDaemon(options: DaemonOptions): Promise<void> {
  const paths = reaperPaths(options.cache);
  mkdirSync(options.cache, { recursive: true });
  const log = (line: string) => {
    try {
      appendFileSync(paths.log, `${new Date().toISOString()} [${process.pid}] ${line}\n`);
    } catch {
      // logging is best effort
    }
  };
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(paths.lock, { realpath: false, stale: 10_000, update: 2_000 });
  } catch {
    return; // another reaper holds the lock and serves the socket
  }
  if (await answers(paths.socket)) {
    await release();
    return;
  }
  rmSync(paths.socket, { force: true });
  const clients = new Set<Socket>();
  let idleTimer: NodeJS.Timeout | undefined;
  const server: Server = createServer((socket) => {
    clients.add(socket);
    clearTimeout(idleTimer);
    const held = new Map<number, ReapTarget>();
    socket.write(`${JSON.stringify({ t: 'hello', pid: process.pid } satisfies ReaperMessage)}\n`);
    const lines = createInterface({ input: socket });
    lines.on('line', (line) => {
      let message: ClientMessage;
      try {
        message = JSON.parse(line) as ClientMessage;
      } catch {
        return;
      }
      if (message.t === 'add' && validTarget(message.target)) held.set(message.id, message.target);
      else if (message.t === 'remove') held.delete(message.id);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clients.delete(socket);
      for (const target of held.values()) {
        log(`client gone: reaping ${target.name} (pid ${target.pid}, ${target.dir})`);
        void reapTarget(target).catch((error: unknown) => log(`reaping ${target.name} failed: ${String(error)}`));
      }
      held.clear();
      armIdle();
    });
  });
  const armIdle = () => {
    clearTimeout(idleTimer);
    if (clients.size > 0) return;
    idleTimer = setTimeout(() => {
      log('idle: exiting');
      server.close();
      rmSync(paths.socket, { force: true });
      void release().finally(() => process.exit(0));
    }, options.idleMs ?? 30_000);
  };
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(paths.socket, () => resolve());
  });
  chmodSync(paths.socket, 0o600);
  log(`listening on ${paths.socket}`);
  armIdle();
}

function validTarget(target: unknown): target is ReapTarget {
  const t = target as ReapTarget;
  // only kvmtest's own guests and private directories, whatever a client asks
  return typeof t === 'object' && t !== null && Number.isInteger(t.pid) && t.pid > 1 && typeof t.name === 'string' && /^kvmtest-[a-z0-9-]+$/.test(t.name)
    && typeof t.dir === 'string' && isAbsolute(t.dir) && basename(t.dir).startsWith('kvmtest');
}

/** True when something answers on the socket (a live reaper). */
function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection(socket);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}
