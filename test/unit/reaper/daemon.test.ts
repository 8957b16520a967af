import { existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { createConnection, Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { type Daemon, runDaemon } from '../../../src/reaper/daemon.js';
import { type ClientMessage, reaperPaths } from '../../../src/reaper/protocol.js';
import { useTempRoots } from '../fixtures/temp-roots.js';
import { waitFor } from '../fixtures/wait-for.js';

const { cleanups, makeRoot, rootWithLink } = useTempRoots();

describe('reaper daemon', () => {
  async function startDaemon(): Promise<{ daemon: Daemon; cache: string; socketModes: number[] }> {
    const cache = makeRoot();
    // the socket's mode the instant it exists: listen() binds synchronously, so stat right after it
    const socketModes: number[] = [];
    const listen = Server.prototype.listen;
    vi.spyOn(Server.prototype, 'listen').mockImplementation(function (this: Server, ...args: unknown[]) {
      const result = (listen as (...a: unknown[]) => Server).apply(this, args);
      if (args[0] === reaperPaths(cache).socket) socketModes.push(statSync(reaperPaths(cache).socket).mode & 0o777);
      return result;
    });
    const daemon = (await runDaemon({ cache, idleMs: 60_000 }))!;
    cleanups.push(() => daemon.close());
    return { daemon, cache, socketModes };
  }

  async function client(cache: string): Promise<Socket & { send(m: ClientMessage): void }> {
    const socket = createConnection(reaperPaths(cache).socket);
    await new Promise((r) => socket.once('connect', r));
    cleanups.push(() => socket.destroy());
    return Object.assign(socket, { send: (m: ClientMessage) => socket.write(`${JSON.stringify(m)}\n`) });
  }

  it('its socket is never open to others: 0600 from the moment it is bound', async () => {
    const { cache, socketModes } = await startDaemon();
    expect(socketModes).toHaveLength(1);
    expect(socketModes[0]! & 0o077).toBe(0);
    expect(statSync(reaperPaths(cache).socket).mode & 0o077).toBe(0);
  });

  it('a dead client: the reaper deletes its registered dir, and nothing it was refused', async () => {
    const { daemon, cache } = await startDaemon();
    const { root, outside, victim, link, good } = rootWithLink();
    const c = await client(cache);
    // before its root is named, nothing is accepted
    c.send({ t: 'add', id: 1, target: { name: 'kvmtest-1', dir: good } });
    c.send({ t: 'root', path: root });
    // never a real system path here: were the guard broken, the reaper would delete it
    const system = join(outside, 'etc');
    mkdirSync(system);
    c.send({ t: 'add', id: 2, target: { name: 'kvmtest-2', dir: system } });
    c.send({ t: 'add', id: 3, target: { name: 'kvmtest-3', dir: victim } });
    c.send({ t: 'add', id: 4, target: { name: 'kvmtest-4', dir: link } });
    c.send({ t: 'add', id: 5, target: { name: 'kvmtest-5', dir: good } });
    expect(await waitFor(() => daemon.targets().length === 1)).toBe(true);
    expect(daemon.targets()).toEqual([{ name: 'kvmtest-5', dir: good }]);
    // the pid follows once QEMU runs
    c.send({ t: 'add', id: 5, target: { name: 'kvmtest-5', dir: good, pid: 999_999 } });
    expect(await waitFor(() => daemon.targets()[0]?.pid === 999_999)).toBe(true);
    c.destroy();
    expect(await waitFor(() => !existsSync(good))).toBe(true);
    expect(existsSync(victim)).toBe(true);
    expect(existsSync(link)).toBe(true);
    expect(existsSync(system)).toBe(true);
  });

  it('a dir swapped for a symlink after its registration is not followed', async () => {
    const { daemon, cache } = await startDaemon();
    const root = makeRoot();
    const outside = makeRoot();
    const victim = join(outside, 'kvmtest-victim');
    mkdirSync(victim);
    const dir = join(root, 'kvmtest-swapped');
    mkdirSync(dir);
    const c = await client(cache);
    c.send({ t: 'root', path: root });
    c.send({ t: 'add', id: 1, target: { name: 'kvmtest-1', dir } });
    expect(await waitFor(() => daemon.targets().length === 1)).toBe(true);
    rmSync(dir, { recursive: true });
    symlinkSync(victim, dir);
    c.destroy();
    expect(await waitFor(() => /kept .*kvmtest-swapped/.test(readLog(cache)))).toBe(true);
    expect(existsSync(victim)).toBe(true);
  });
});

function readLog(cache: string): string {
  try {
    return readFileSync(reaperPaths(cache).log, 'utf8');
  } catch {
    return '';
  }
}
