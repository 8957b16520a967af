import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import createDebug from 'debug';
import { cacheDir, packageRoot } from '../host/paths.js';
import { type ClientMessage, type ReapTarget, reaperPaths } from './protocol.js';

const debug = createDebug('kvmtest:reaper');
const CONNECT_TIMEOUT_MS = 5000;

let link: Promise<Socket | undefined> | undefined;
let nextId = 1;

/** A guest known to the reaper: say its QEMU's pid once started, and that it was stopped properly. */
export interface Registration {
  started(pid: number): void;
  remove(): void;
}

/**
 * Tells the shared reaper about a guest's directory (before its QEMU starts: the pid follows with
 * started()). Resolves once the registration is written. Best effort: without a reaper (kvmtest not
 * built, or it cannot start) guests are still cleaned up on exit, SIGINT and SIGTERM by the
 * in-process registry, just not after SIGKILL.
 */
export async function registerWithReaper(target: ReapTarget): Promise<Registration> {
  const socket = await (link ??= connect());
  if (!socket) return { started() {}, remove() {} };
  const id = nextId++;
  send(socket, { t: 'add', id, target });
  return {
    started: (pid) => send(socket, { t: 'add', id, target: { ...target, pid } }),
    remove: () => send(socket, { t: 'remove', id }),
  };
}

function send(socket: Socket, message: ClientMessage): void {
  if (!socket.destroyed) socket.write(`${JSON.stringify(message)}\n`);
}

async function connect(): Promise<Socket | undefined> {
  const cache = cacheDir();
  const paths = reaperPaths(cache);
  const entry = join(packageRoot(), 'dist', 'reaper', 'main.js');
  const deadline = Date.now() + CONNECT_TIMEOUT_MS;
  let started = false;
  while (Date.now() < deadline) {
    const socket = await tryConnect(paths.socket);
    if (socket) {
      // the link must not keep the host process alive; its close is the reaper's signal
      socket.unref();
      socket.on('error', () => {});
      socket.on('close', () => {
        link = undefined;
      });
      // the reaper deletes nothing outside this root, whatever a registration names
      send(socket, { t: 'root', path: tmpdir() });
      debug('connected to the reaper at %s', paths.socket);
      return socket;
    }
    if (!started) {
      if (!existsSync(entry)) {
        debug('no reaper: %s is not built', entry);
        return undefined;
      }
      mkdirSync(cache, { recursive: true });
      const child = spawn(process.execPath, [entry, cache], { detached: true, stdio: 'ignore', cwd: '/', env: process.env });
      child.unref();
      started = true;
      debug('started the reaper (pid %d)', child.pid);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  debug('the reaper did not answer within %d ms', CONNECT_TIMEOUT_MS);
  return undefined;
}

function tryConnect(path: string): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection(path);
    socket.once('connect', () => resolve(socket));
    socket.once('error', () => resolve(undefined));
  });
}
