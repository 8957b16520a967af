import { rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import createDebug from 'debug';
import { dir as tmpDir } from 'tmp-promise';
import { KvmtestError } from '../errors.js';
import type { LentMachine } from '../guest/adopt.js';
import { boot } from '../guest/boot.js';
import { type Guest, machineOf } from '../guest/guest.js';
import type { Machine } from '../machine/machine.js';
import { listenPrivately } from '../util/listen.js';
import { GuestPool } from './pool.js';
import { type FromOwner, parseToOwner, poolKey, type SharedBootOptions } from './protocol.js';

const debug = createDebug('kvmtest:pool');

export interface PoolOwnerOptions {
  /** Guests kept ready per starting point; default 1. */
  size?: number;
}

/** A running pool owner: its socket (for the workers), and how to stop it. */
export interface PoolOwner extends AsyncDisposable {
  readonly socket: string;
  /** Stops every guest it holds, lent or not, and closes the socket. */
  close(): Promise<void>;
}

/**
 * One process that restores guests for several others (the workers of a vitest run): a GuestPool
 * per starting point (the same boot options), each guest lent to the worker that takes it. The
 * guest's QEMU stays this process's child (its console, its exit, its cleanup); the worker connects
 * its own QMP and agent links. A worker that disposes its guest quits QEMU over QMP; a worker that
 * dies (even by SIGKILL) closes its connection, and every guest lent on it is stopped here.
 */
export async function startPoolOwner(options: PoolOwnerOptions = {}): Promise<PoolOwner> {
  const tmp = await tmpDir({ prefix: 'kvmtest-pool', unsafeCleanup: true, mode: 0o700 });
  const socketPath = join(tmp.path, 'pool.sock');
  const pools = new Map<string, GuestPool>();
  const connections = new Set<Socket>();
  const stopping = new Set<Promise<void>>();
  let closing = false;

  /** A spare whose QEMU died while it waited is disposed, and the next one taken (three tries). */
  const takeRunning = async (pool: GuestPool): Promise<Guest> => {
    for (let attempt = 1; ; attempt++) {
      const guest = await pool.take();
      if (guest.state === 'running' || attempt === 3) return guest;
      debug('%s died while it waited in the pool (%s)', guest.info.name, guest.state);
      await guest.dispose();
    }
  };

  const poolFor = (opts: SharedBootOptions): GuestPool => {
    const key = poolKey(opts);
    let pool = pools.get(key);
    if (!pool) {
      pool = new GuestPool(
        async () => {
          const guest = await boot({ snapshot: true, ...opts, progress: false });
          // a spare holds no links: the borrower makes its own
          machineOf(guest).lend();
          return guest;
        },
        options.size === undefined ? {} : { size: options.size },
      ).warm();
      pools.set(key, pool);
    }
    return pool;
  };

  const server: Server = createServer((socket) => {
    connections.add(socket);
    const lent = new Map<string, Machine>();
    const send = (message: FromOwner) => {
      if (!socket.destroyed) socket.write(`${JSON.stringify(message)}\n`);
    };
    const lend = (guest: Guest): LentMachine => {
      const machine = machineOf(guest);
      lent.set(guest.info.name, machine);
      const stopPanics = machine.qemu.console.onFatal((verdict) => verdict.kind === 'panic' && send({ t: 'panic', name: guest.info.name, line: verdict.line }));
      void machine.qemu.exited.then(async (exit) => {
        stopPanics();
        send({ t: 'exited', name: guest.info.name, exit });
        await giveBack(guest.info.name);
      });
      return { ...(machine.pid ? { pid: machine.pid } : {}), spec: machine.spec, dir: machine.dir, disk: machine.disk, info: { ...guest.info, owner: process.pid } };
    };
    const giveBack = async (name: string) => {
      const machine = lent.get(name);
      if (!machine) return;
      lent.delete(name);
      const stopped = machine.stop('kill');
      stopping.add(stopped);
      await stopped;
      stopping.delete(stopped);
      debug('%s returned', name);
    };
    const lines = createInterface({ input: socket });
    lines.on('line', (line) => {
      const message = parseToOwner(line);
      if (!message) return debug('ignored a malformed line from a worker');
      if (message.t === 'take') {
        if (closing) return send({ t: 'error', id: message.id, code: 'GUEST_DISPOSED', message: 'the shared guest pool is closing' });
        takeRunning(poolFor(message.options))
          .then((guest) => {
            // the worker went while its guest was restoring: it is nobody's, stop it
            if (socket.destroyed) return guest.dispose();
            send({ t: 'lease', id: message.id, lent: lend(guest) });
          })
          .catch((error: unknown) => {
            const coded = error instanceof KvmtestError ? error : undefined;
            send({ t: 'error', id: message.id, code: coded?.code ?? 'INTERNAL', message: (error as Error)?.message ?? String(error) });
          });
      } else if (message.t === 'kill') lent.get(message.name)?.qemu.kill(message.signal);
      else void giveBack(message.name);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      connections.delete(socket);
      // the worker is gone (disposed, exited or killed): whatever it still had goes now
      for (const name of [...lent.keys()]) void giveBack(name);
    });
  });
  await listenPrivately(server, socketPath);
  server.unref();
  debug('pool owner listening on %s', socketPath);

  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= (async () => {
      closing = true;
      server.close();
      const hungUp = [...connections].map((socket) => new Promise((r) => socket.once('close', r)));
      for (const socket of connections) socket.destroy();
      await Promise.all([...pools.values()].map((pool) => pool.dispose()));
      // the connections' close handlers stop what was lent; wait for their machines
      await Promise.all(hungUp);
      await Promise.all(stopping);
      await rm(tmp.path, { recursive: true, force: true });
    })());
  return {
    socket: socketPath,
    close,
    [Symbol.asyncDispose]: close,
  };
}
