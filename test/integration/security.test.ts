/**
 * What a guest can reach, and what can reach it: no network unless asked (then forwards on
 * 127.0.0.1 only), sockets in a private directory and nothing on TCP, no password or SSH login,
 * the base image open read-only, and pulls that cannot write outside their destination.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { boot, type Guest } from '../../src/index.js';
import { renderSeed } from '../../src/seed/cloud-config.js';

const image = inject('debian12');
const work = mkdtempSync(join(tmpdir(), 'kvmtest-test-'));
let vm: Guest;

beforeAll(async () => {
  vm = await boot({ image: 'debian-12', boot: 'kernel', snapshot: true });
});
afterAll(async () => {
  await vm?.dispose();
  rmSync(work, { recursive: true, force: true });
});

/** The files and sockets a process has open: fd → target, and the open flags from fdinfo. */
function openFiles(pid: number): { target: string; flags: number }[] {
  return readdirSync(`/proc/${pid}/fd`).map((fd) => {
    const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    const flags = Number.parseInt(/^flags:\s+([0-7]+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))![1]!, 8);
    return { target, flags };
  });
}

/** Inodes of TCP sockets in LISTEN state, IPv4 and IPv6, with their local addresses. */
function tcpListeners(): Map<string, string> {
  const out = new Map<string, string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] === '0A') out.set(cols[9]!, cols[1]!);
    }
  }
  return out;
}

describe('isolation by default', () => {
  it('the guest has no network interface but loopback', async () => {
    const links = await vm.exec(['sh', '-c', 'ls /sys/class/net']);
    expect(links.stdout.trim().split('\n')).toEqual(['lo']);
  });

  it('QEMU listens on nothing over TCP; its sockets are in a directory only this user can open', () => {
    const listeners = tcpListeners();
    const sockets = openFiles(vm.pid!)
      .map((f) => /^socket:\[(\d+)\]$/.exec(f.target)?.[1])
      .filter(Boolean);
    expect(sockets.length).toBeGreaterThan(0);
    expect(sockets.filter((inode) => listeners.has(inode!))).toEqual([]);
    expect(statSync(vm.info.dir).mode & 0o777).toBe(0o700);
    expect(vm.info.agentSocket.startsWith(`${vm.info.dir}/`)).toBe(true);
    expect(existsSync(join(vm.info.dir, 'qmp.sock'))).toBe(true);
  });

  it('QEMU opens the base image and the snapshot disk read-only; only the overlay is writable', () => {
    const files = openFiles(vm.pid!);
    const mode = (path: string) => files.filter((f) => f.target === path).map((f) => f.flags & 3);
    expect(mode(image.disk)).toEqual([0]); // O_RDONLY
    expect(mode(join(vm.info.dir, 'disk.qcow2'))).toEqual([2]); // O_RDWR
    const others = files.filter((f) => f.target.endsWith('.qcow2') && f.target !== image.disk && !f.target.startsWith(vm.info.dir));
    expect(others.length).toBe(1); // the snapshot's disk, between the base and the overlay
    expect(others[0]!.flags & 3).toBe(0);
  });

  it('no password and no SSH login: nobody has a password or an authorized key, the seed sets none', async () => {
    // users whose password field is a hash (not locked, not empty), then keys in any authorized_keys (cloud-init leaves them empty)
    const logins = await vm.exec([
      'sh',
      '-c',
      'awk -F: \'$2 !~ /^[!*]/ && $2 != "" {print $1}\' /etc/shadow; cat /root/.ssh/authorized_keys /home/*/.ssh/authorized_keys 2>/dev/null | grep -c . || true',
    ]);
    expect(logins.stdout).toBe('0\n');
    const seed = renderSeed({ instanceId: 'i', hostname: 'h', agentSource: 'print(1)', user: {} });
    expect(seed['user-data']).not.toMatch(/passw|chpasswd|ssh_pwauth:\s*true|lock_passwd:\s*false|ssh_authorized_keys/i);
  });
});

describe('pulls cannot write outside their destination', () => {
  it('links pointing out of a pulled directory are dropped and reported, the rest lands, and nothing lands outside', async () => {
    await vm.exec(['sh', '-c', 'rm -rf /tmp/evil && mkdir -p /tmp/evil/sub && echo ok > /tmp/evil/fine.txt && ln -s /etc/passwd /tmp/evil/abs && ln -s ../../../outside /tmp/evil/sub/rel']);
    const dest = join(work, 'pulled');
    const result = await vm.pull('/tmp/evil', dest);
    expect(result.dropped).toEqual([
      { path: 'abs', reason: expect.stringMatching(/absolute link target/) },
      { path: 'sub/rel', reason: expect.stringMatching(/resolves outside the destination/) },
    ]);
    expect(readFileSync(join(dest, 'fine.txt'), 'utf8')).toBe('ok\n');
    expect(readdirSync(join(dest, 'sub'))).toEqual([]);
    expect(existsSync(join(work, 'outside'))).toBe(false);
    expect(readdirSync(work).filter((name) => name !== 'pulled')).toEqual([]);
  });
});

describe('networking when asked', () => {
  let net: Guest;
  afterAll(() => net?.dispose());

  it('user-mode NAT with forwards bound to 127.0.0.1 on free ports, reported in info', async () => {
    net = await boot({ image: 'debian-12', boot: 'kernel', network: { forwards: [{ guest: 8080 }] } });
    const [forward] = net.info.forwards!;
    expect(forward).toEqual({ guest: 8080, host: expect.any(Number) });
    const listeners = tcpListeners();
    const sockets = openFiles(net.pid!)
      .map((f) => /^socket:\[(\d+)\]$/.exec(f.target)?.[1])
      .filter((inode) => inode && listeners.has(inode));
    // exactly one listener, on 127.0.0.1:<the chosen port> (0100007F is 127.0.0.1 in /proc's byte order)
    expect(sockets.map((inode) => listeners.get(inode!))).toEqual([`0100007F:${forward!.host.toString(16).toUpperCase().padStart(4, '0')}`]);
    const links = await net.exec(['sh', '-c', 'ls /sys/class/net']);
    expect(links.stdout.trim().split('\n')).toContain('lo');
    expect(links.stdout.trim().split('\n').length).toBeGreaterThan(1);
  });
});
