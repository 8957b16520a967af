/**
 * Flow control and output limits against the real guest agent over --stdio (issue 10, item 2):
 * exec()'s maxBuffer, and a live stream nobody reads pausing the link instead of filling host memory.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../src/agent/client.js';
import { type ExecResult, GuestProcess } from '../../src/agent/exec.js';

let child: ChildProcess;
let client: AgentClient;
const MiB = 1024 * 1024;

beforeAll(async () => {
  child = spawn('python3', [join(__dirname, '../../guest/agent.py'), '--stdio'], { stdio: ['pipe', 'pipe', 'inherit'] });
  client = new AgentClient(Duplex.from({ readable: child.stdout!, writable: child.stdin! }));
  await client.handshake();
});

afterAll(() => {
  client.close();
  child.kill();
});

/** Bytes a live stream holds on the host: written to it and not yet read. */
const held = (p: GuestProcess) => p.stdout.readableLength + p.stdout.writableLength;

/** Waits until `done()` or `ms` pass (a bounded wait, not an assertion on time). */
async function waitFor(done: () => boolean, ms: number): Promise<void> {
  for (const end = Date.now() + ms; !done() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50));
}

describe('exec maxBuffer', () => {
  it('kills a command past maxBuffer and rejects with OUTPUT_LIMIT carrying the kept output; the link stays usable', async () => {
    const flood = new GuestProcess(client, { shell: 'head -c 200000000 /dev/zero; echo finished >&2' }, { maxBuffer: 2 * MiB }, { live: false });
    const error = await flood.then(
      () => undefined,
      (e: unknown) => e as { code: string; result: ExecResult },
    );
    expect(error).toMatchObject({ code: 'OUTPUT_LIMIT' });
    expect(error!.result.stdoutBytes.length).toBe(2 * MiB);
    expect(error!.result.signal).toBe('SIGKILL');
    const after = await new GuestProcess(client, { argv: ['echo', 'still here'] }, {}, { live: false });
    expect(after.stdout).toBe('still here\n');
  });

  it('counts stderr on its own', async () => {
    const error = await new GuestProcess(client, { shell: 'head -c 5000000 /dev/zero >&2' }, { maxBuffer: MiB }, { live: false }).then(
      () => undefined,
      (e: unknown) => e as { code: string; result: ExecResult },
    );
    expect(error).toMatchObject({ code: 'OUTPUT_LIMIT', result: { stdoutBytes: Buffer.alloc(0) } });
    expect(error!.result.stderrBytes.length).toBe(MiB);
  });

  it('refuses a maxBuffer that is not a positive integer with INVALID_OPTION', () => {
    for (const maxBuffer of [0, -1, 1.5, Number.NaN, '10' as unknown as number]) {
      expect(() => new GuestProcess(client, { argv: ['true'] }, { maxBuffer }, { live: false })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    }
  });
});

describe('flow control', () => {
  it('a live stream nobody reads holds the link: 200 MB from the guest stay in the guest until read', async () => {
    const p = new GuestProcess(client, { shell: 'head -c 200000000 /dev/zero' }, { buffer: false }, { live: true });
    let most = 0;
    await waitFor(() => (most = Math.max(most, held(p))) > 32 * MiB, 3000);
    expect(most).toBeLessThan(32 * MiB);
    let bytes = 0;
    p.stdout.on('data', (chunk: Buffer) => (bytes += chunk.length));
    const result = await p;
    expect(result.exitCode).toBe(0);
    expect(bytes).toBe(200_000_000);
  });

  it('a few MiB of unread output do not hold the link: other requests go on', async () => {
    const p = new GuestProcess(client, { shell: 'head -c 4000000 /dev/zero; sleep 0.5' }, { buffer: false }, { live: true });
    await p.pid;
    const other = await new GuestProcess(client, { shell: 'sleep 0.2; echo other' }, {}, { live: false });
    expect(other.stdout).toBe('other\n');
    p.stdout.resume();
    await expect(p).resolves.toMatchObject({ exitCode: 0 });
  });

  it('while held, frames to the guest still go: kill ends a flooding command, other requests resume after the drain', async () => {
    const p = new GuestProcess(client, { argv: ['yes'] }, { buffer: false }, { live: true });
    await p.pid;
    await waitFor(() => held(p) > 0, 3000);
    p.kill('SIGKILL');
    p.stdout.resume();
    await expect(p).resolves.toMatchObject({ signal: 'SIGKILL' });
    await client.ping();
  });

  it('lines() splits each stream on its own and caps an endless line', async () => {
    const p = new GuestProcess(client, { shell: 'printf "a\\n"; head -c 3000000 /dev/zero | tr "\\000" x; printf "\\nb\\n"' }, {}, { live: true });
    const lines: string[] = [];
    for await (const line of p.lines('stdout')) lines.push(line);
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(/^x+…\[\d+ bytes cut\]$/);
    expect(lines[1]!.length).toBeLessThan(70_000);
    expect(lines[2]).toBe('b');
  });
});
