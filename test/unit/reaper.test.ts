import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { Server, createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runDaemon, type Daemon } from '../../src/reaper/daemon.js';
import { checkRoot, checkTarget } from '../../src/reaper/guard.js';
import { isGuestProcess, reapTarget } from '../../src/reaper/kill.js';
import { reaperPaths, type ClientMessage } from '../../src/reaper/protocol.js';

/** A process whose command line carries the given name, as QEMU's `-name` does. */
function fakeGuest(name: string) {
  const child = spawn('bash', ['-c', `exec -a ${name} sleep 30`], { stdio: 'ignore' });
  const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_code, signal) => r(signal)));
  return { pid: child.pid!, exited, kill: () => child.kill('SIGKILL') };
}

const temp = realpathSync(tmpdir());
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  vi.restoreAllMocks();
});

/** A fresh temp root (0700, ours) holding kvmtest-* dirs, removed after the test. */
function makeRoot(): string {
  const root = mkdtempSync(join(temp, 'kvmtest-unit-root-'));
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  return root;
}

/** A temp root with a real guest dir and a link to a dir outside it (in another temp dir). */
function scene() {
  const root = makeRoot();
  const outside = makeRoot();
  const victim = join(outside, 'kvmtest-victim');
  mkdirSync(victim);
  const link = join(root, 'kvmtest-link');
  symlinkSync(victim, link);
  const good = join(root, 'kvmtest-good');
  mkdirSync(good);
  return { root, outside, victim, link, good };
}

const waitFor = async (check: () => boolean, ms = 5000) => {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return check();
};

describe('reaper: processes', () => {
  it('stops a guest whose command line names it, and removes its directory', async () => {
    const guest = fakeGuest('kvmtest-abc123');
    await new Promise((r) => setTimeout(r, 200));
    const dir = mkdtempSync(join(temp, 'kvmtest-'));
    expect(isGuestProcess({ pid: guest.pid, name: 'kvmtest-abc123' })).toBe(true);
    expect(await reapTarget({ pid: guest.pid, name: 'kvmtest-abc123', dir }, [temp], 500)).toBeUndefined();
    expect(await guest.exited).toBe('SIGTERM');
    expect(existsSync(dir)).toBe(false);
  });

  it('never kills a reused pid: a process that does not name the guest is left alone', async () => {
    const other = fakeGuest('not-a-guest');
    await new Promise((r) => setTimeout(r, 200));
    const dir = mkdtempSync(join(temp, 'kvmtest-'));
    expect(isGuestProcess({ pid: other.pid, name: 'kvmtest-abc123' })).toBe(false);
    await reapTarget({ pid: other.pid, name: 'kvmtest-abc123', dir }, [temp], 100);
    expect(() => process.kill(other.pid, 0)).not.toThrow();
    expect(existsSync(dir)).toBe(false);
    other.kill();
    await other.exited;
  });
});

describe('reaper: what it may delete', () => {
  it('a temp root must be a real directory owned by this user (or root), not writable by others unless sticky', () => {
    const root = makeRoot();
    expect(checkRoot(root)).toEqual({ root });
    expect(checkRoot(tmpdir())).toEqual({ root: temp });
    expect(checkRoot('relative/dir')).toMatchObject({ refused: expect.stringMatching(/absolute/) });
    expect(checkRoot('/')).toMatchObject({ refused: expect.stringMatching(/not a temp directory/) });
    const open = join(root, 'open');
    mkdirSync(open, { mode: 0o777 });
    chmodSync(open, 0o777);
    expect(checkRoot(open)).toMatchObject({ refused: expect.stringMatching(/writable by others/) });
  });

  // pure checks only: no test hands a real system path to code that deletes
  it('refuses /etc, a path outside the roots, a symlink to outside; accepts a real child', () => {
    const { root, outside, victim, link, good } = scene();
    const t = (dir: string) => ({ name: 'kvmtest-1', dir });
    expect(checkTarget(t('/etc'), [root])).toMatch(/not a kvmtest directory/);
    expect(checkTarget(t(victim), [root])).toMatch(/not directly inside a registered temp root/);
    expect(checkTarget(t(link), [root])).toMatch(/not a directory/);
    expect(checkTarget(t(join(link, '.')), [root])).toBeDefined();
    expect(checkTarget(t(join(good, 'kvmtest-deeper')), [root])).toBeDefined();
    expect(checkTarget({ name: 'sshd', dir: good }, [root])).toMatch(/not a kvmtest guest/);
    expect(checkTarget(t(good), [])).toMatch(/not directly inside/);
    expect(checkTarget(t(good), [root])).toBeUndefined();
  });

  it.runIf(process.getuid?.() === 0)('refuses a dir owned by another uid', () => {
    const root = makeRoot();
    const theirs = join(root, 'kvmtest-theirs');
    mkdirSync(theirs);
    chownSync(theirs, 65534, 65534);
    expect(checkTarget({ name: 'kvmtest-1', dir: theirs }, [root])).toMatch(/owned by uid 65534/);
  });
});

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
    const { root, outside, victim, link, good } = scene();
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

describe('registry', () => {
  it("a guest's directory is registered with the reaper before its QEMU starts; the pid follows", async () => {
    const cache = makeRoot();
    vi.stubEnv('KVMTEST_CACHE', cache);
    const daemon = (await runDaemon({ cache, idleMs: 60_000 }))!;
    cleanups.push(() => daemon.close());
    const { track } = await import('../../src/machine/registry.js');
    const dir = mkdtempSync(join(temp, 'kvmtest-unit-guest-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const tracked = track('kvmtest-unit1', dir);
    await tracked.registered;
    // what boot() awaits before it starts QEMU: the reaper already holds the directory
    expect(await waitFor(() => daemon.targets().some((t) => t.dir === dir))).toBe(true);
    expect(daemon.targets().find((t) => t.dir === dir)).toEqual({ name: 'kvmtest-unit1', dir });
    tracked.started(4242);
    expect(await waitFor(() => daemon.targets().some((t) => t.dir === dir && t.pid === 4242))).toBe(true);
    tracked.untrack();
    expect(await waitFor(() => !daemon.targets().some((t) => t.dir === dir))).toBe(true);
    vi.unstubAllEnvs();
  });
});
