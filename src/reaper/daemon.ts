import { appendFileSync, mkdirSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import lockfile from 'proper-lockfile';
import { listenPrivately } from '../util/listen.js';
import { checkRoot, checkTarget } from './guard.js';
import { reapTarget } from './kill.js';
import { type ClientMessage, type ReaperMessage, type ReapTarget, reaperPaths } from './protocol.js';

export interface DaemonOptions {
  cache: string;
  /** Exit after this long with no client connected (default 30 s). */
  idleMs?: number;
}

/** A running reaper: what it holds (for tests and logs), and how to stop it. */
export interface Daemon {
  /** Every target held for a live connection. */
  targets(): ReapTarget[];
  /** Resolves when the reaper stopped (idle, or close()). */
  readonly closed: Promise<void>;
  close(): Promise<void>;
}

/**
 * The reaper: one per cache directory, shared by every process that runs guests. It holds what
 * each connection registered and reaps what a closed connection left, but only directories under
 * the temp root that connection named (see guard.ts). It takes a lock before it binds, so
 * concurrent starts end with one reaper; it stops when idle. Undefined when another reaper serves.
 */
export async function runDaemon(options: DaemonOptions): Promise<Daemon | undefined> {
  const paths = reaperPaths(options.cache);
  mkdirSync(options.cache, { recursive: true, mode: 0o700 });
  const log = (line: string) => {
    try {
      appendFileSync(paths.log, `${new Date().toISOString()} [${process.pid}] ${line}\n`, { mode: 0o600 });
    } catch {
      // logging is best effort
    }
  };
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(paths.lock, { realpath: false, stale: 10_000, update: 2_000 });
  } catch {
    return undefined; // another reaper holds the lock and serves the socket
  }
  if (await answers(paths.socket)) {
    await release();
    return undefined;
  }
  rmSync(paths.socket, { force: true });
  const clients = new Map<Socket, Map<number, ReapTarget>>();
  const own = checkRoot(tmpdir());
  const ownRoot = 'root' in own ? own.root : undefined;
  let idleTimer: NodeJS.Timeout | undefined;
  let closing = false;
  let done!: () => void;
  const closed = new Promise<void>((resolve) => (done = resolve));
  const server: Server = createServer((socket) => {
    const held = new Map<number, ReapTarget>();
    // the reaper's own temp root (it inherits its first client's environment), plus what each client names
    const roots = new Set<string>(ownRoot ? [ownRoot] : []);
    clients.set(socket, held);
    clearTimeout(idleTimer);
    socket.write(`${JSON.stringify({ t: 'hello', pid: process.pid } satisfies ReaperMessage)}\n`);
    const lines = createInterface({ input: socket });
    lines.on('line', (line) => {
      let message: ClientMessage;
      try {
        message = JSON.parse(line) as ClientMessage;
      } catch {
        return;
      }
      if (message?.t === 'root') {
        const root = checkRoot(message.path);
        if ('root' in root) roots.add(root.root);
        else log(`refused: ${root.refused}`);
      } else if (message?.t === 'add' && Number.isInteger(message.id)) {
        const refusal = checkTarget(message.target, roots);
        if (refusal === undefined) held.set(message.id, { ...message.target });
        else log(`refused: ${refusal}`);
      } else if (message?.t === 'remove') held.delete(message.id);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clients.delete(socket);
      // close() hangs up on clients that are alive: nothing of theirs is orphaned
      if (closing) held.clear();
      for (const target of held.values()) {
        log(`client gone: reaping ${target.name} (pid ${target.pid ?? 'not started'}, ${target.dir})`);
        void reapTarget(target, roots).then(
          (refusal) => refusal && log(`kept ${target.dir}: ${refusal}`),
          (error: unknown) => log(`reaping ${target.name} failed: ${String(error)}`),
        );
      }
      held.clear();
      armIdle();
    });
  });
  const close = async () => {
    closing = true;
    clearTimeout(idleTimer);
    server.close();
    for (const socket of clients.keys()) socket.destroy();
    rmSync(paths.socket, { force: true });
    await release().catch(() => {});
    done();
  };
  const armIdle = () => {
    clearTimeout(idleTimer);
    if (clients.size > 0) return;
    idleTimer = setTimeout(() => {
      log('idle: exiting');
      void close();
    }, options.idleMs ?? 30_000);
  };
  await listenPrivately(server, paths.socket);
  log(`listening on ${paths.socket}`);
  armIdle();
  return { targets: () => [...clients.values()].flatMap((held) => [...held.values()]), closed, close };
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
