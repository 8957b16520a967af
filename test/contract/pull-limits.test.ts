/**
 * Caps and deadlines of transfers against the real guest agent over --stdio (issue 22): a collected
 * directory of 150 000 entries is refused PULL_TOO_MANY_ENTRIES by the agent itself, told the host's
 * caps, before any data (it lists no directory past maxEntries + 1 names); a pull or push past its
 * timeout is TRANSFER_TIMEOUT and stops in the guest too; a push's source that is a link is followed.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../src/agent/client.js';
import { pull, push } from '../../src/agent/transfer.js';
import { describeCost, type Measured, measured } from '../unit/agent/pull/memory.js';

let child: ChildProcess;
let client: AgentClient;
let work: string;
/** Every byte the agent has sent on the link. */
let fromAgent = 0;
const MiB = 1024 * 1024;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'kvmtest-contract-limits-'));
  child = spawn('python3', [join(__dirname, '../../guest/agent.py'), '--stdio'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const counted = new PassThrough();
  child.stdout!.on('data', (chunk: Buffer) => (fromAgent += chunk.length));
  child.stdout!.pipe(counted);
  client = new AgentClient(Duplex.from({ readable: counted, writable: child.stdin! }));
  await client.handshake();
});

afterAll(() => {
  client.close();
  child.kill();
  rmSync(work, { recursive: true, force: true }); // 300 000 files: seconds, a minute on a busy disk
}, 180_000);

/** `count` empty files in `dir`, `perDir` to a subdirectory (all in `dir` itself when perDir is count). */
function emptyFiles(dir: string, count: number, perDir: number): void {
  const script = `import os, sys
top, count, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(count):
    d = top if per >= count else os.path.join(top, "d%04d" % (i // per))
    if i % per == 0 and d != top: os.mkdir(d)
    os.close(os.open(os.path.join(d, "f%06d" % i), os.O_CREAT | os.O_WRONLY, 0o644))`;
  mkdirSync(dir);
  execFileSync('python3', ['-c', script, dir, String(count), String(perDir)]);
}

/** The cost of `run` (see memory.ts) and the bytes the agent sent meanwhile. */
async function costOf<T>(run: () => Promise<T>): Promise<Measured<T> & { sentBytes: number }> {
  const sent = fromAgent;
  const cost = await measured(run);
  return { ...cost, sentBytes: fromAgent - sent };
}

describe('a pull over maxEntries, by the real agent', () => {
  it.each([
    ['150 000 empty files in one directory', 150_000],
    ['150 000 empty files in 150 directories', 1000],
  ])(
    '%s: PULL_TOO_MANY_ENTRIES within seconds, before any data, host memory flat; nothing left',
    async (name, perDir) => {
      const source = join(work, `many-${perDir}`);
      emptyFiles(source, 150_000, perDir);
      const dest = join(work, `back-${perDir}`);
      const cost = await costOf(() => pull(client, source, dest).catch((e: unknown) => e));
      const error = cost.value;
      console.log(`${name}: ${(error as { code?: string }).code} in ${describeCost(cost)}; ${cost.sentBytes} bytes from the agent`);
      expect(error).toMatchObject({ code: 'PULL_TOO_MANY_ENTRIES', message: expect.stringMatching(/maxEntries/) });
      expect(cost.ms).toBeLessThan(20_000);
      expect(cost.sentBytes).toBeLessThan(4096); // the error frame, no tar stream
      expect(cost.peakRssMiB).toBeLessThan(64);
      expect(existsSync(dest)).toBe(false);
      expect(readdirSync(work).filter((n) => n.startsWith('.kvmtest-pull-'))).toEqual([]);
      await client.ping();
    },
    300_000, // making 150 000 files takes 10 s here, a minute on a busy disk
  );

  it("an agent that ignores the caps (the real one, not told them): the host's own count refuses at 100 001, host memory flat, and the agent is told to stop", async () => {
    const source = join(work, 'many-1000');
    if (!existsSync(source)) emptyFiles(source, 150_000, 1000);
    const deaf = { request: (t: 'pull', fields: { path: string }, options: object) => client.request(t, { path: fields.path }, options) } as unknown as AgentClient;
    const dest = join(work, 'back-deaf');
    const before = fromAgent;
    const cost = await costOf(() => pull(deaf, source, dest).catch((e: unknown) => e));
    const error = cost.value;
    console.log(
      `150 000 entries from an agent that ignores maxEntries: ${(error as { code?: string }).code} by the host in ${describeCost(cost)}; ${(cost.sentBytes / MiB).toFixed(1)} MiB from the agent`,
    );
    expect(error).toMatchObject({ code: 'PULL_TOO_MANY_ENTRIES', message: expect.stringMatching(/more than 100000 entries/) });
    // what the host holds stays flat; its peak is garbage V8 has not collected yet
    expect(cost.heldHeapMiB).toBeLessThan(16);
    expect(cost.peakRssMiB).toBeLessThan(512);
    expect(existsSync(dest)).toBe(false);
    // told `end`, it stops: of the 230 MiB stream (pax headers: 1.5 KiB a member) about the 100 000 members' 150 MiB came
    await new Promise((r) => setTimeout(r, 1000));
    expect(fromAgent - before).toBeLessThan(190 * MiB);
    await client.ping();
  }, 300_000);

  it('a tree at its caps exactly is pulled whole; one entry or one block less is refused', async () => {
    const source = join(work, 'exact');
    emptyFiles(source, 100, 10); // 10 directories + 100 files
    writeFileSync(join(source, 'data'), Buffer.alloc(5000, 1));
    expect((await pull(client, source, join(work, 'exact-back'), { maxEntries: 111 })).entries).toBe(111);
    await expect(pull(client, source, join(work, 'exact-refused'), { maxEntries: 110 })).rejects.toMatchObject({ code: 'PULL_TOO_MANY_ENTRIES' });
    await expect(pull(client, join(source, 'data'), join(work, 'data-refused'), { maxBytes: 4096 })).rejects.toMatchObject({ code: 'PULL_TOO_LARGE' });
    expect(existsSync(join(work, 'exact-refused'))).toBe(false);
  });
});

describe('deadlines', () => {
  it('a pull past its timeout is TRANSFER_TIMEOUT, leaves nothing, and the agent stops sending', async () => {
    const big = join(work, 'big.sparse');
    writeFileSync(big, '');
    truncateSync(big, 3 * 1024 * MiB); // read as 3 GiB of zeros, under the default maxBytes
    const dest = join(work, 'big-back');
    const t0 = performance.now();
    await expect(pull(client, big, dest, { timeout: '300ms' })).rejects.toMatchObject({ code: 'TRANSFER_TIMEOUT', message: expect.stringMatching(/300 ms/) });
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(existsSync(dest)).toBe(false);
    // told `end`, the agent stops at its next chunk: the link goes quiet but for what was queued
    await new Promise((r) => setTimeout(r, 500));
    const after = fromAgent;
    await new Promise((r) => setTimeout(r, 1000));
    expect(fromAgent - after).toBeLessThan(MiB);
    await client.ping();
  });

  it('a caller abort is ABORTED; a deadline already past when the pull starts is TRANSFER_TIMEOUT', async () => {
    const source = join(work, 'small');
    mkdirSync(source);
    writeFileSync(join(source, 'x'), 'x');
    await expect(pull(client, source, join(work, 'small-1'), { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ABORTED' });
    await expect(pull(client, source, join(work, 'small-2'), { timeout: 0 })).rejects.toMatchObject({ code: 'TRANSFER_TIMEOUT' });
    await expect(pull(client, source, join(work, 'small-3'), { timeout: 'soon' })).rejects.toMatchObject({ code: 'INVALID_OPTION', message: expect.stringMatching(/"timeout"/) });
    expect((await pull(client, source, join(work, 'small-4'), { timeout: '30s' })).entries).toBe(1);
  });

  it('a streamed push past its timeout is TRANSFER_TIMEOUT; the agent lets the push go and serves the next', async () => {
    const blob = join(work, 'blob.bin');
    writeFileSync(blob, randomBytes(64 * MiB));
    await expect(push(client, blob, join(work, 'blob-in-guest'), { timeout: 50 })).rejects.toMatchObject({ code: 'TRANSFER_TIMEOUT' });
    await expect(push(client, blob, join(work, 'blob-never'), { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ABORTED' });
    expect(existsSync(join(work, 'blob-never'))).toBe(false);
    await client.ping();
    await push(client, join(work, 'small'), join(work, 'small-pushed'), { timeout: '30s' });
    expect(readFileSync(join(work, 'small-pushed/x'), 'utf8')).toBe('x');
  });
});

describe('a push source that is a symbolic link', () => {
  it('is followed by the streamed push, as by a push by disk: a link to a file arrives as the file, a link to a tree as the tree; links inside stay links', async () => {
    const real = join(work, 'real.txt');
    writeFileSync(real, 'the content\n');
    symlinkSync(real, join(work, 'file-link'));
    await push(client, join(work, 'file-link'), join(work, 'pushed-file'));
    expect(lstatSync(join(work, 'pushed-file')).isFile()).toBe(true);
    expect(readFileSync(join(work, 'pushed-file'), 'utf8')).toBe('the content\n');

    const tree = join(work, 'real-tree');
    mkdirSync(tree);
    writeFileSync(join(tree, 'a'), 'a');
    symlinkSync('a', join(tree, 'inner-link'));
    symlinkSync(tree, join(work, 'tree-link'));
    await push(client, join(work, 'tree-link'), join(work, 'pushed-tree'));
    expect(lstatSync(join(work, 'pushed-tree')).isDirectory()).toBe(true);
    expect(readlinkSync(join(work, 'pushed-tree/inner-link'))).toBe('a');
    expect(readFileSync(join(work, 'pushed-tree/a'), 'utf8')).toBe('a');
  });
});
