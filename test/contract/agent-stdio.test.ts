/**
 * The real guest agent (guest/agent.py) driven by the real host client over its --stdio mode:
 * the protocol contract, without QEMU. Commands run on this host, in temp directories.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../src/agent/client.js';
import { encodeFrame } from '../../src/agent/codec.js';
import { GuestProcess } from '../../src/agent/exec.js';
import { pull, push } from '../../src/agent/transfer.js';
import { makeOddTree } from '../fixtures/odd-tree.js';
import { treeDigest } from '../fixtures/tree-digest.js';

let child: ChildProcess;
let client: AgentClient;
let work: string;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const run = (argv: string[], options = {}) => new GuestProcess(client, { argv }, options, { live: false });

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'kvmtest-contract-'));
  child = spawn('python3', [join(__dirname, '../../guest/agent.py'), '--stdio'], { stdio: ['pipe', 'pipe', 'inherit'] });
  client = new AgentClient(Duplex.from({ readable: child.stdout!, writable: child.stdin! }));
  const hello = await client.handshake();
  expect(hello).toMatchObject({ protocol: 1, arch: expect.any(String), kernel: expect.any(String) });
});

afterAll(() => {
  client.close();
  child.kill();
  rmSync(work, { recursive: true, force: true });
});

describe('agent over stdio', () => {
  it('answers ping', async () => {
    await client.ping();
  });

  it('runs argv, keeps stdout and stderr apart and byte-exact, reports the exit code', async () => {
    const r = await run(['sh', '-c', 'printf "\\000\\377a"; echo err >&2; exit 3']);
    expect(r.exitCode).toBe(3);
    expect([...r.stdoutBytes]).toEqual([0, 255, 97]);
    expect(r.stderr).toBe('err\n');
  });

  it('runs a shell string with env and cwd', async () => {
    const r = await new GuestProcess(client, { shell: 'echo "$FOO $(pwd)"' }, { env: { FOO: 'bar' }, cwd: work }, { live: false });
    expect(r.stdout).toBe(`bar ${work}\n`);
  });

  it('feeds stdin', async () => {
    const input = randomBytes(700_000);
    const r = await run(['cat'], { input });
    expect(sha(r.stdoutBytes)).toBe(sha(input));
  });

  it('reports a killing signal by name', async () => {
    const p = run(['sleep', '100']);
    await p.pid;
    p.kill('SIGTERM');
    const r = await p;
    expect(r).toMatchObject({ exitCode: null, signal: 'SIGTERM' });
  });

  it('times out: SIGTERM, then the rejection carries EXEC_TIMEOUT', async () => {
    await expect(run(['sleep', '100'], { timeoutMs: 300 })).rejects.toMatchObject({ code: 'EXEC_TIMEOUT' });
  });

  it('a missing command is COMMAND_NOT_FOUND', async () => {
    await expect(run(['no-such-command-kvmtest'])).rejects.toMatchObject({ code: 'COMMAND_NOT_FOUND' });
  });

  it('streams 10 MB of binary stdout byte-exact and runs concurrent execs', async () => {
    const [big, ...small] = await Promise.all([
      run(['sh', '-c', 'head -c 10000000 /dev/zero | tr "\\000" "\\377"']),
      ...Array.from({ length: 8 }, (_, i) => run(['sh', '-c', `echo ${i}; exit ${i}`])),
    ]);
    expect(big!.stdoutBytes.length).toBe(10_000_000);
    expect(big!.stdoutBytes.every((b) => b === 255)).toBe(true);
    expect(small.map((r) => [r.stdout, r.exitCode])).toEqual(Array.from({ length: 8 }, (_, i) => [`${i}\n`, i]));
  });

  it('pushes a directory tree and pulls it back with modes and links', async () => {
    const src = join(work, 'src');
    mkdirSync(join(src, 'sub/empty'), { recursive: true });
    writeFileSync(join(src, 'run.sh'), '#!/bin/sh\necho hi\n');
    chmodSync(join(src, 'run.sh'), 0o755);
    const blob = randomBytes(3_000_000);
    writeFileSync(join(src, 'sub/blob.bin'), blob);
    symlinkSync('blob.bin', join(src, 'sub/link'));
    await push(client, src, join(work, 'in-guest'));
    expect(statSync(join(work, 'in-guest/run.sh')).mode & 0o777).toBe(0o755);
    await pull(client, join(work, 'in-guest'), join(work, 'back'));
    expect(sha(readFileSync(join(work, 'back/sub/blob.bin')))).toBe(sha(blob));
    expect(statSync(join(work, 'back/run.sh')).mode & 0o777).toBe(0o755);
    expect(statSync(join(work, 'back/sub/empty')).isDirectory()).toBe(true);
    expect(readlinkSync(join(work, 'back/sub/link'))).toBe('blob.bin');
  });

  it('pushes a real project tree byte-exact: node_modules with @scope packages and .bin links, odd names, empty dirs, hard links, a sparse file', async () => {
    const src = makeOddTree(join(work, 'odd'));
    // node_modules itself: its top-level entries start with '@' (node-tar once read those as archives to append)
    await push(client, join(src, 'node_modules'), join(work, 'odd-nm'));
    expect(treeDigest(join(work, 'odd-nm'))).toBe(treeDigest(join(src, 'node_modules')));
    await push(client, src, join(work, 'odd-in-guest'));
    expect(treeDigest(join(work, 'odd-in-guest'))).toBe(treeDigest(src));
  });

  it('pulls an empty directory as an empty directory', async () => {
    mkdirSync(join(work, 'empty-in-guest'));
    await pull(client, join(work, 'empty-in-guest'), join(work, 'empty-back'));
    expect(readdirSync(join(work, 'empty-back'))).toEqual([]);
  });

  it('pushes and pulls a single file; pulling into a directory keeps the name', async () => {
    const file = join(work, 'one.txt');
    writeFileSync(file, 'one\n');
    await push(client, file, join(work, 'guest-dir/renamed.txt'));
    expect(readFileSync(join(work, 'guest-dir/renamed.txt'), 'utf8')).toBe('one\n');
    mkdirSync(join(work, 'out'));
    await pull(client, join(work, 'guest-dir/renamed.txt'), join(work, 'out'));
    expect(readFileSync(join(work, 'out/renamed.txt'), 'utf8')).toBe('one\n');
  });

  it('a missing pull source and a missing push source fail clearly', async () => {
    await expect(pull(client, join(work, 'nope'), join(work, 'x'))).rejects.toMatchObject({ code: 'GUEST_IO', message: expect.stringMatching(/ENOENT/) });
    await expect(push(client, join(work, 'nope'), '/tmp/x')).rejects.toMatchObject({ code: 'LOCAL_PATH_NOT_FOUND' });
  });

  it('runs a shell on a terminal: its size, resize (SIGWINCH), Ctrl-C to the foreground command, the exit status', async () => {
    const sh = new GuestProcess(client, { argv: ['sh', '-i'] }, { tty: { rows: 30, cols: 100 }, env: { PS1: '$ ' } }, { live: true });
    let seen = '';
    sh.stdout.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
    });
    const until = async (text: string) => {
      const deadline = Date.now() + 10_000;
      while (!seen.includes(text) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(seen).toContain(text);
    };
    sh.stdin.write('[ -t 0 ] && [ -t 1 ] && echo "on a tty: $TERM"; stty size\n');
    await until('on a tty: ');
    await until('30 100');
    sh.resize({ rows: 40, cols: 120 });
    sh.stdin.write('stty size\n');
    await until('40 120');
    // Ctrl-C is a byte on the terminal: the line discipline sends SIGINT to the foreground job, not the shell
    sh.stdin.write('sleep 100\n');
    await new Promise((r) => setTimeout(r, 300));
    sh.stdin.write('\x03');
    await until('^C');
    sh.stdin.write('echo "the shell lives on after $?"\n');
    await until('the shell lives on after 130');
    sh.stdin.write('exit 7\n');
    const r = await sh;
    expect(r.exitCode).toBe(7);
    expect(r.stderr).toBe('');
    expect(() => new GuestProcess(client, { argv: ['true'] }, { tty: { rows: 0, cols: 80 } })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });

  it('survives a malformed request and keeps serving', async () => {
    const socket = (client as unknown as { stream: Duplex }).stream;
    socket.write(encodeFrame({ t: 'exec', id: 9999, argv: 42 } as never));
    socket.write(Buffer.from('KVT1\x00\x00\x00\x05\x00\x00\x00\x00{bad}'));
    await client.ping();
    expect((await run(['true'])).exitCode).toBe(0);
  });
});
