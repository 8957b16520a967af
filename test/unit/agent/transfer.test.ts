/**
 * Pulls from a hostile guest, without QEMU: crafted tar streams fed through the real pull() by a
 * fake agent on the other end of the link, plus the pure name, mode and link-resolution rules.
 * What must hold: nothing is written outside the destination, a refused pull leaves nothing,
 * links are judged physically, modes are clamped, and bytes, entries and time are capped.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../../src/agent/client.js';
import { encodeFrame, FrameDecoder } from '../../../src/agent/codec.js';
import { type HostMessage, PROTOCOL_VERSION } from '../../../src/agent/protocol.js';
import { type PullOptions, pull } from '../../../src/agent/transfer.js';
import { type Member, memberBlocks, tarOf } from '../fixtures/crafted-tar.js';
import { usePullPlaces } from '../fixtures/pull-places.js';

// ---------------------------------------------------------------- a fake agent on the other end of the link

interface FakePull {
  kind: 'file' | 'dir';
  /** The tar stream, sent in frames of at most 256 KiB (a generator may make it lazily). */
  data: Buffer | Iterable<Buffer>;
  /** Send no `end` (the stream just stops, as a stuck guest would). */
  hang?: boolean;
  /** Called after each data frame the host has taken (the agent's writes wait for the host to read). */
  onFrame?: (sent: number) => void;
}

/** An AgentClient whose agent answers hello and one kind of pull, with the given stream. */
async function fakeAgent(answer: FakePull): Promise<{ client: AgentClient; stalls: () => number; received: HostMessage[] }> {
  const toAgent = new PassThrough();
  // room for many frames: the agent waits only when the host stops reading, not because a frame is large
  const toHost = new PassThrough({ highWaterMark: 1024 * 1024 });
  const client = new AgentClient(Duplex.from({ readable: toHost, writable: toAgent }));
  const decoder = new FrameDecoder<HostMessage>();
  decoder.synced = true;
  let stalls = 0;
  const received: HostMessage[] = [];
  const send = async (header: Record<string, unknown> & { t: string; id: number }, body?: Buffer) => {
    if (!toHost.write(encodeFrame(header, body))) {
      stalls++;
      await new Promise((resolve) => toHost.once('drain', resolve));
    }
  };
  const serve = async (id: number) => {
    await send({ t: 'pull-start', id, kind: answer.kind });
    let sent = 0;
    for (const chunk of Buffer.isBuffer(answer.data) ? [answer.data] : answer.data) {
      for (let at = 0; at < chunk.length; at += 256 * 1024) {
        const part = chunk.subarray(at, at + 256 * 1024);
        await send({ t: 'data', id }, part);
        sent += part.length;
        answer.onFrame?.(sent);
      }
    }
    if (!answer.hang) await send({ t: 'end', id });
  };
  toAgent.on('data', (chunk: Buffer) => {
    for (const { header } of decoder.push(chunk)) {
      received.push(header);
      if (header.t === 'hello')
        void send({
          t: 'hello',
          id: 0,
          nonce: header.nonce,
          protocol: PROTOCOL_VERSION,
          version: 'fake',
          os: { id: 'fake', versionId: null, prettyName: null },
          kernel: 'k',
          arch: 'x86_64',
          hostname: 'h',
          pid: 1,
        });
      if (header.t === 'pull') void serve(header.id);
    }
  });
  await client.handshake();
  return { client, stalls: () => stalls, received };
}

const places = usePullPlaces();
const { place } = places;

async function pullDir(members: Member[] | Buffer, dest: string, options: PullOptions = {}) {
  const { client } = await fakeAgent({ kind: 'dir', data: Buffer.isBuffer(members) ? members : tarOf(members) });
  try {
    return await pull(client, '/results', dest, options);
  } finally {
    client.close();
  }
}

const mode = (path: string) => lstatSync(path).mode & 0o7777;

async function until(condition: () => boolean): Promise<void> {
  for (const end = Date.now() + 5000; !condition(); ) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ---------------------------------------------------------------- the extractor through pull()

describe('pull: hostile trees land inside the destination or not at all', () => {
  let victim: string;
  beforeAll(() => {
    victim = join(places.work, 'victim');
    mkdirSync(victim);
  });
  afterEach(() => expect(readdirSync(victim)).toEqual([]));

  it('a symlink chain through a link to `.` that climbs out is dropped and reported; the links that stay inside are kept', async () => {
    const { dest } = place();
    const climb = `${'l1/'.repeat(30)}${'../'.repeat(30)}${victim.slice(1)}`;
    const result = await pullDir(
      [
        { path: '.bin/tool', type: 'SymbolicLink', linkpath: '../pkg/tool.js' }, // a link to a later member (node_modules/.bin)
        { path: 'l1', type: 'SymbolicLink', linkpath: '.' },
        { path: 'b', type: 'SymbolicLink', linkpath: climb },
        { path: 'in', type: 'SymbolicLink', linkpath: 'l1' }, // link to a link, inside
        { path: 'abs', type: 'SymbolicLink', linkpath: '/etc/passwd' },
        { path: 'dangling', type: 'SymbolicLink', linkpath: 'no/such' },
        { path: 'up', type: 'SymbolicLink', linkpath: 'in/..' }, // lexically `.`, physically the parent of the root
        { path: 'pkg', type: 'Directory' },
        { path: 'pkg/tool.js', body: 'tool' },
        { path: 'ok.txt', body: 'fine' },
      ],
      dest,
    );
    expect(readlinkSync(join(dest, '.bin/tool'))).toBe('../pkg/tool.js');
    expect(readFileSync(join(dest, '.bin/tool'), 'utf8')).toBe('tool');
    expect(readlinkSync(join(dest, 'l1'))).toBe('.');
    expect(readlinkSync(join(dest, 'in'))).toBe('l1');
    expect(readFileSync(join(dest, 'ok.txt'), 'utf8')).toBe('fine');
    for (const gone of ['b', 'abs', 'dangling', 'up']) expect(existsSync(join(dest, gone)) || lstatSync(join(dest, gone), { throwIfNoEntry: false }) !== undefined).toBe(false);
    expect(result.dropped.map((d) => d.path).sort()).toEqual(['abs', 'b', 'dangling', 'up']);
    expect(result.dropped.find((d) => d.path === 'b')!.reason).toMatch(/outside the destination/);
    expect(result.dropped.find((d) => d.path === 'abs')!.reason).toMatch(/absolute/);
    expect(result.dropped.find((d) => d.path === 'dangling')!.reason).toMatch(/dangles/);
  });

  it('a member through a member link lands in a real directory inside, and the link is dropped as a duplicate', async () => {
    const { dest } = place();
    const result = await pullDir(
      [
        { path: 'esc', type: 'SymbolicLink', linkpath: '..' },
        { path: 'esc/evil', body: 'x' },
      ],
      dest,
    );
    expect(lstatSync(join(dest, 'esc')).isDirectory()).toBe(true);
    expect(readFileSync(join(dest, 'esc/evil'), 'utf8')).toBe('x');
    expect(result.dropped).toEqual([{ path: 'esc', reason: expect.stringMatching(/duplicate/) }]);
  });

  it('setuid, setgid, sticky and group/world-writable modes are clamped', async () => {
    const { dest } = place();
    await pullDir(
      [
        { path: 'suid', mode: 0o6755, body: '#!/bin/sh\n' },
        { path: 'shared', mode: 0o666, body: 'x' },
        { path: 'tmp', type: 'Directory', mode: 0o1777 },
        { path: 'ro', type: 'Directory', mode: 0o555 },
        { path: 'ro/f', mode: 0o444, body: 'r' },
      ],
      dest,
    );
    expect(mode(join(dest, 'suid'))).toBe(0o755);
    expect(mode(join(dest, 'shared'))).toBe(0o644);
    expect(mode(join(dest, 'tmp'))).toBe(0o755);
    expect(mode(join(dest, 'ro'))).toBe(0o755);
    expect(mode(join(dest, 'ro/f'))).toBe(0o444);
  });

  it('hard links only to an earlier regular file of the archive', async () => {
    const { dest } = place();
    const result = await pullDir(
      [
        { path: 'f', body: 'data' },
        { path: 'same', type: 'Link', linkpath: 'f' },
        { path: 'out', type: 'Link', linkpath: '../../etc/passwd' },
        { path: 'abs', type: 'Link', linkpath: '/etc/passwd' },
        { path: 'later', type: 'Link', linkpath: 'g' },
        { path: 'g', body: 'g' },
        { path: 'd', type: 'Directory' },
        { path: 'todir', type: 'Link', linkpath: 'd' },
      ],
      dest,
    );
    expect(statSync(join(dest, 'same')).ino).toBe(statSync(join(dest, 'f')).ino);
    expect(result.dropped.map((d) => d.path).sort()).toEqual(['abs', 'later', 'out', 'todir']);
    expect(readdirSync(dest).sort()).toEqual(['d', 'f', 'g', 'same']);
  });

  it('devices and fifos are dropped and reported, never made', async () => {
    const { dest } = place();
    const result = await pullDir(
      [
        { path: 'fifo', type: 'FIFO' },
        { path: 'null', type: 'CharacterDevice' },
        { path: 'sda', type: 'BlockDevice' },
        { path: 'keep', body: 'k' },
      ],
      dest,
    );
    expect(readdirSync(dest)).toEqual(['keep']);
    expect(result.dropped).toEqual([
      { path: 'fifo', reason: 'fifo' },
      { path: 'null', reason: 'device node' },
      { path: 'sda', reason: 'device node' },
    ]);
  });

  it('a duplicate name never replaces or writes through what is there', async () => {
    const { dest } = place();
    const result = await pullDir(
      [
        { path: 'a', body: 'first' },
        { path: 'a', body: 'second' },
        { path: 'a', type: 'Directory' },
      ],
      dest,
    );
    expect(readFileSync(join(dest, 'a'), 'utf8')).toBe('first');
    expect(result.dropped.map((d) => d.reason)).toEqual([expect.stringMatching(/duplicate/), expect.stringMatching(/duplicate/)]);
  });

  it('an empty directory, and a single file (into a directory it keeps its name; setuid dropped)', async () => {
    const { parent, dest } = place();
    await pullDir(tarOf([]), dest);
    expect(readdirSync(dest)).toEqual([]);
    const { client } = await fakeAgent({ kind: 'file', data: tarOf([{ path: 'whatever', mode: 0o4755, body: 'hello' }]) });
    try {
      await pull(client, '/bin/tool', dest);
      expect(readFileSync(join(dest, 'tool'), 'utf8')).toBe('hello');
      expect(mode(join(dest, 'tool'))).toBe(0o755);
      await pull(client, '/bin/tool', join(parent, 'renamed'));
      expect(readFileSync(join(parent, 'renamed'), 'utf8')).toBe('hello');
    } finally {
      client.close();
    }
    expect(readdirSync(parent).sort()).toEqual(['dest', 'renamed']);
  });
});

describe('pull: a refused pull leaves nothing', () => {
  /** Runs a pull expected to fail; the parent must hold what it held before (no dest, no temp dir). */
  async function refused(members: Member[] | Buffer, options: PullOptions = {}, code?: string) {
    const { parent, dest } = place();
    const error = await pullDir(members, dest, options).catch((e) => e);
    expect(error).toMatchObject({ code });
    expect(readdirSync(parent)).toEqual([]);
    return error;
  }

  it('absolute and `..` member names: UNSAFE_ARCHIVE, even after members were written', async () => {
    await refused(
      [
        { path: 'fine.txt', body: 'x' },
        { path: '/etc/evil', body: 'x' },
      ],
      {},
      'UNSAFE_ARCHIVE',
    );
    await refused(
      [
        { path: 'fine.txt', body: 'x' },
        { path: 'a/../../evil', body: 'x' },
      ],
      {},
      'UNSAFE_ARCHIVE',
    );
  });

  it('a file whose header claims more than maxBytes is refused before any of it is written', async () => {
    const error = await refused(Buffer.concat(memberBlocks({ path: 'sparse.img', size: 2 ** 40, body: Buffer.alloc(4096) })), { maxBytes: 1024 * 1024 }, 'PULL_TOO_LARGE');
    expect(error.message).toMatch(/maxBytes/);
  });

  it('a stream larger than maxBytes (many small files) is refused', async () => {
    const members = Array.from({ length: 200 }, (_, i) => ({ path: `f${i}`, body: Buffer.alloc(10_000) }));
    await refused(members, { maxBytes: 1024 * 1024 }, 'PULL_TOO_LARGE');
  });

  it('a gzip stream (node-tar inflates it) is capped by the bytes it inflates to', async () => {
    // bits of noise: it compresses about 6 times, under node-tar's own ratio cap
    const body = randomBytes(16 * 1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = 0x30 | (body[i]! & 1);
    const zipped = gzipSync(tarOf([{ path: 'noise', body }]), { level: 1 });
    expect(zipped.length).toBeLessThan(4 * 1024 * 1024);
    await refused(zipped, { maxBytes: 4 * 1024 * 1024 }, 'PULL_TOO_LARGE');
  });

  it('100 000 entries pass, 100 001 are refused (directories made for members count)', async () => {
    const fifos = (count: number) => tarOf(Array.from({ length: count }, (_, i) => ({ path: `p${i}`, type: 'FIFO' as const })));
    const { dest } = place();
    expect((await pullDir(fifos(100_000), dest)).droppedTotal).toBe(100_000);
    await refused(fifos(100_001), {}, 'PULL_TOO_MANY_ENTRIES');
    await refused([{ path: 'a/b/c/d/e/f', body: 'deep' }], { maxEntries: 5 }, 'PULL_TOO_MANY_ENTRIES');
  }, 60_000);

  it('an abort mid-stream: ABORTED, nothing left', async () => {
    const { parent, dest } = place();
    const controller = new AbortController();
    const big = tarOf([
      { path: 'a', body: 'a' },
      { path: 'big', body: Buffer.alloc(8 * 1024 * 1024) },
    ]);
    const { client } = await fakeAgent({ kind: 'dir', data: big.subarray(0, 4 * 1024 * 1024), hang: true, onFrame: (sent) => sent >= 1024 * 1024 && controller.abort() });
    try {
      await expect(pull(client, '/results', dest, { signal: controller.signal })).rejects.toMatchObject({ code: 'ABORTED' });
    } finally {
      client.close();
    }
    expect(readdirSync(parent)).toEqual([]);
  });

  it("the caps go to the agent with the request; an agent that ignores them is refused by the host's own count, and told `end`", async () => {
    const { parent, dest } = place();
    // an agent that streams 3000 empty files although it was told 1000
    const { client, received } = await fakeAgent({ kind: 'dir', data: tarOf(Array.from({ length: 3000 }, (_, i) => ({ path: `f${i}` }))) });
    try {
      await expect(pull(client, '/results', dest, { maxEntries: 1000 })).rejects.toMatchObject({ code: 'PULL_TOO_MANY_ENTRIES', message: expect.stringMatching(/more than 1000 entries/) });
      await until(() => received.some((f) => f.t === 'end'));
    } finally {
      client.close();
    }
    const request = received.find((f) => f.t === 'pull');
    expect(request).toMatchObject({ path: '/results', maxEntries: 1000, maxBytes: 4 * 2 ** 30 });
    expect(received.find((f) => f.t === 'end')).toMatchObject({ id: request!.id });
    expect(readdirSync(parent)).toEqual([]);
  });

  it('a stuck guest (pull-start, some data, then nothing): TRANSFER_TIMEOUT at the timeout, nothing left, `end` sent', async () => {
    const { parent, dest } = place();
    const { client, received } = await fakeAgent({ kind: 'dir', data: tarOf([{ path: 'a', body: 'a' }], { end: false }), hang: true });
    try {
      const t0 = performance.now();
      await expect(pull(client, '/results', dest, { timeout: 200 })).rejects.toMatchObject({ code: 'TRANSFER_TIMEOUT' });
      expect(performance.now() - t0).toBeLessThan(3000);
      await until(() => received.some((f) => f.t === 'end'));
    } finally {
      client.close();
    }
    expect(readdirSync(parent)).toEqual([]);
  });

  it('a destination that is, or lies under, a symbolic link is refused before the guest is asked', async () => {
    const { parent } = place();
    const elsewhere = join(places.work, 'elsewhere');
    mkdirSync(elsewhere);
    symlinkSync(elsewhere, join(parent, 'link'));
    for (const dest of [join(parent, 'link'), join(parent, 'link/sub/dest')]) {
      await expect(pullDir([{ path: 'x', body: 'x' }], dest)).rejects.toMatchObject({ code: 'PULL_DEST_SYMLINK' });
    }
    expect(readdirSync(elsewhere)).toEqual([]);
    expect(readdirSync(parent)).toEqual(['link']);
  });

  it('a directory pull into a non-empty directory is refused; into an empty one it lands', async () => {
    const { parent, dest } = place();
    mkdirSync(dest);
    writeFileSync(join(dest, 'mine'), 'mine');
    await expect(pullDir([{ path: 'x', body: 'x' }], dest)).rejects.toMatchObject({ code: 'PULL_DEST_NOT_EMPTY' });
    expect(readdirSync(dest)).toEqual(['mine']);
    const empty = join(parent, 'empty');
    mkdirSync(empty);
    await pullDir([{ path: 'x', body: 'x' }], empty);
    expect(readdirSync(empty)).toEqual(['x']);
    expect(readdirSync(parent).sort()).toEqual(['dest', 'empty']);
  });

  it('parents made for the destination are removed again when the pull is refused', async () => {
    const { parent } = place();
    await expect(pullDir([{ path: '/abs', body: 'x' }], join(parent, 'a/b/dest'))).rejects.toMatchObject({ code: 'UNSAFE_ARCHIVE' });
    expect(readdirSync(parent)).toEqual([]);
  });
});

describe('pull: backpressure', () => {
  it("a paused channel stops reading the link: the agent's writes stall until the host catches up", async () => {
    // made as it is sent, so that the RSS below is the host's, not the test's data
    const chunks = function* () {
      yield Buffer.concat(memberBlocks({ path: 'big', size: 256 * 1024 * 1024 }));
      const zeros = Buffer.alloc(1024 * 1024);
      for (let i = 0; i < 256; i++) yield zeros;
      yield Buffer.alloc(1024);
    };
    // bytes the agent has sent that are not in the file yet: what the host holds in memory
    const { parent, dest } = place();
    let sent = 0;
    let peak = 0;
    const onDisk = () => {
      const stage = readdirSync(parent).find((name) => name.startsWith('.kvmtest-pull-'));
      return stage ? (statSync(join(parent, stage, 'root/big'), { throwIfNoEntry: false })?.size ?? 0) : 0;
    };
    const { client, stalls } = await fakeAgent({
      kind: 'dir',
      data: chunks(),
      onFrame: (total) => {
        sent = total;
        peak = Math.max(peak, sent - onDisk());
      },
    });
    try {
      const result = await pull(client, '/results', dest);
      expect(result.bytes).toBe(sent);
    } finally {
      client.close();
    }
    expect(statSync(join(dest, 'big')).size).toBe(256 * 1024 * 1024);
    expect(stalls()).toBeGreaterThan(0);
    expect(peak).toBeLessThan(32 * 1024 * 1024);
    console.log(`256 MiB pulled through the fake agent: the sender stalled ${stalls()} times; at most ${(peak / 2 ** 20).toFixed(1)} MiB sent and not yet on disk`);
  }, 60_000);
});
