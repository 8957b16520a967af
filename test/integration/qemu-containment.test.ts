/**
 * QEMU itself contained: it runs under its seccomp sandbox (no spawning, no privilege changes), and
 * the restore that started it needed no shell (its device state comes in on an inherited fd, its RAM is the template's file mapped private). An isolated network (`network: { forwards, outbound: false }`): the host still reaches the guest
 * through its forwards, but the guest can open no connection out, not even to the host's own
 * services behind slirp's gateway (10.0.2.2 is the host's 127.0.0.1 on a plain NAT).
 */
import { readFileSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boot, type Guest } from '../../src/index.js';

let vm: Guest;
let server: Server;
let port = 0;
let accepted = 0;

beforeAll(async () => {
  // a host service the guest must not reach
  server = createServer((socket) => {
    accepted += 1;
    socket.end('host secret\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
  vm = await boot({ image: 'debian-12', boot: 'kernel', snapshot: true, network: { forwards: [{ guest: 8000 }], outbound: false } });
});
afterAll(async () => {
  await vm?.dispose();
  await new Promise((r) => server?.close(r));
});

/** Python in the guest: connects to each host:port and reads; a line per target with what came or the error. */
const connect = (...targets: [string, number][]) => [
  'python3',
  '-c',
  `import socket\nfor h,p in ${JSON.stringify(targets)}:\n try:\n  s=socket.create_connection((h,p),timeout=5); print("got", s.recv(100))\n except Exception as e:\n  print("refused", type(e).__name__, e)`,
];

describe('QEMU sandbox', () => {
  it('QEMU runs under a seccomp filter, with -sandbox spawn=deny, restored from an fd loaded over QMP (-incoming defer, no exec: migration)', () => {
    const status = readFileSync(`/proc/${vm.pid}/status`, 'utf8');
    expect(/^Seccomp:\s+(\d)/m.exec(status)?.[1]).toBe('2');
    const argv = readFileSync(`/proc/${vm.pid}/cmdline`, 'utf8').split('\0');
    expect(argv[argv.indexOf('-sandbox') + 1]).toBe('on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny');
    expect(vm.info.snapshot).toBeDefined();
    // the state comes in on fd 3 through QMP migrate-incoming (fd:3): the capabilities must be set first
    expect(argv[argv.indexOf('-incoming') + 1]).toBe('defer');
    expect(argv.join(' ')).not.toContain('exec:');
    // the template's RAM file, mapped private (copy-on-write)
    expect(argv[argv.indexOf('-object') + 1]).toMatch(/^memory-backend-file,id=ram0,size=\d+M,mem-path=\S+\/snapshots\/[0-9a-f]+\/ram\.bin,share=off$/);
  });
});

describe('isolated network (outbound: false)', () => {
  it('the guest cannot connect to a host service through the gateway', async () => {
    const r = await vm.exec(connect(['10.0.2.2', port]));
    expect(r.stdout).toMatch(/^refused /);
    expect(r.stdout).not.toContain('host secret');
    expect(accepted).toBe(0);
  });

  it('nor anywhere else (the DNS relay and outside addresses included)', async () => {
    const r = await vm.exec(connect(['10.0.2.3', 53], ['1.1.1.1', 443]));
    expect(r.stdout.trim().split('\n')).toEqual([expect.stringMatching(/^refused /), expect.stringMatching(/^refused /)]);
  });

  it('a forward from the host still reaches a server in the guest', async () => {
    const server = vm.spawn([
      'python3',
      '-c',
      'import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0",8000)); s.listen(1); print("ready", flush=True)\nc,_=s.accept(); c.sendall(b"from guest\\n"); c.close()',
    ]);
    for await (const line of server.lines()) if (line === 'ready') break;
    const { host } = vm.info.forwards![0]!;
    const got = await new Promise<string>((resolve, reject) => {
      const socket = createConnection(host, '127.0.0.1');
      let text = '';
      socket.on('data', (d) => (text += d.toString()));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    expect(got).toBe('from guest\n');
    expect((await server).exitCode).toBe(0);
  });
});
