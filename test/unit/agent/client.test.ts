/**
 * AgentClient.request(): one exchange per request, typed by the request → answers map. A scripted
 * fake agent answers; every way an exchange ends (final frame, until, error frame, link loss, abort,
 * close) settles it once and closes its channel, so later frames on its id reach nobody.
 */
import { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClient } from '../../../src/agent/client.js';
import { encodeFrame, FrameDecoder } from '../../../src/agent/codec.js';
import { EXCHANGES, type HostMessage } from '../../../src/agent/protocol.js';

type Reply = (header: { t: string; id: number; [key: string]: unknown }, body?: Buffer) => void;

/** Plays the agent: a correct hello, then whatever `script` makes of each later frame. */
class ScriptedAgent extends Duplex {
  private readonly decoder = new FrameDecoder<HostMessage>();
  readonly received: HostMessage[] = [];

  constructor(private readonly script: (frame: HostMessage, reply: Reply) => void) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error) => void): void {
    const reply: Reply = (h, body) => setImmediate(() => this.push(encodeFrame(h, body)));
    for (const { header } of this.decoder.push(chunk)) {
      this.received.push(header);
      if (header.t === 'hello')
        reply({ t: 'hello', id: 0, nonce: header.nonce, protocol: 1, version: 'fake', os: { id: null, versionId: null, prettyName: null }, kernel: 'k', arch: 'x86_64', hostname: 'h', pid: 1 });
      else this.script(header, reply);
    }
    callback();
  }

  override _read(): void {}
}

let client: AgentClient | undefined;
afterEach(() => client?.close());

async function connect(script: (frame: HostMessage, reply: Reply) => void): Promise<{ client: AgentClient; agent: ScriptedAgent }> {
  const agent = new ScriptedAgent(script);
  client = new AgentClient(agent);
  await client.handshake();
  return { client, agent };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 20));

describe('AgentClient.request', () => {
  it("the map names a final frame among each request's answers, and every request can end in an error", () => {
    for (const [t, { answers, ends }] of Object.entries(EXCHANGES)) {
      expect(answers, t).toContain(ends);
      expect(answers, t).toContain('error');
    }
  });

  it('sends the request with its fields and body, delivers answers in order, resolves on the final frame', async () => {
    const { client, agent } = await connect((frame, reply) => {
      if (frame.t !== 'exec') return;
      reply({ t: 'started', id: frame.id, pid: 42 });
      reply({ t: 'stdout', id: frame.id }, Buffer.from('out'));
      reply({ t: 'exit', id: frame.id, code: 3, signal: null });
      reply({ t: 'stdout', id: frame.id }, Buffer.from('after the end'));
    });
    const seen: string[] = [];
    const final = await client.request('exec', { argv: ['x'], stdin: false }, { onFrame: ({ header, body }) => seen.push(header.t + (body.length ? `:${body}` : '')) });
    expect(final.header).toMatchObject({ t: 'exit', code: 3 });
    await tick();
    expect(seen).toEqual(['started', 'stdout:out', 'exit']);
    expect(agent.received.find((f) => f.t === 'exec')).toMatchObject({ argv: ['x'], stdin: false });
  });

  it('until ends the exchange early; later frames on its id reach nobody', async () => {
    const { client } = await connect((frame, reply) => {
      if (frame.t !== 'pull') return;
      reply({ t: 'pull-start', id: frame.id, kind: 'dir' });
      reply({ t: 'data', id: frame.id }, Buffer.from('x'));
      reply({ t: 'end', id: frame.id });
    });
    const seen: string[] = [];
    const final = await client.request('pull', { path: '/p' }, { onFrame: ({ header }) => seen.push(header.t), until: ({ header }) => header.t === 'pull-start' });
    expect(final.header.t).toBe('pull-start');
    await tick();
    expect(seen).toEqual(['pull-start']);
  });

  it.each([
    ['exec', 'ENOENT', 'COMMAND_NOT_FOUND'],
    ['exec', 'EACCES', 'GUEST_IO'],
    ['push', 'EBADTAR', 'UNSAFE_ARCHIVE'],
    ['pull', 'ENOSPC', 'GUEST_IO'],
    ['identity', 'EIO', 'SNAPSHOT_FAILED'],
  ] as const)('an error frame to %s (%s) rejects with %s and closes the channel', async (t, agentCode, code) => {
    const { client } = await connect((frame, reply) => {
      reply({ t: 'error', id: frame.id, code: agentCode, message: 'no' });
      reply({ t: 'done', id: frame.id });
    });
    const fields = { exec: { argv: ['x'], stdin: false }, push: { dest: '/d', kind: 'dir' }, pull: { path: '/p' }, identity: { hostname: 'h', machineId: 'm', timeMs: 0 } }[t];
    const seen: string[] = [];
    await expect(client.request(t, fields as never, { onFrame: ({ header }) => seen.push(header.t) })).rejects.toMatchObject({ code, message: expect.stringContaining('no') });
    await tick();
    expect(seen).toEqual([]);
  });

  it('frames the map does not allow for the request are skipped', async () => {
    const { client } = await connect((frame, reply) => {
      reply({ t: 'started', id: frame.id, pid: 1 });
      reply({ t: 'done', id: frame.id });
    });
    const seen: string[] = [];
    const final = await client.request('identity', { hostname: 'h', machineId: 'm', timeMs: 0 }, { onFrame: ({ header }) => seen.push(header.t) });
    expect(final.header.t).toBe('done');
    expect(seen).toEqual(['done']);
  });

  it('link loss rejects every open exchange with the link error', async () => {
    const { client } = await connect(() => {});
    const a = client.request('ping', {});
    const b = client.request('pull', { path: '/p' });
    client.close();
    await expect(a).rejects.toMatchObject({ code: 'AGENT_DISCONNECTED' });
    await expect(b).rejects.toMatchObject({ code: 'AGENT_DISCONNECTED' });
    expect(() => client.request('ping', {})).toThrow(expect.objectContaining({ code: 'AGENT_DISCONNECTED' }));
  });

  it('an abort rejects with ABORTED and closes the channel; an aborted signal sends nothing', async () => {
    const replies: Reply[] = [];
    let answering = false;
    const { client, agent } = await connect((frame, reply) => (answering ? reply({ t: 'pong', id: frame.id }) : replies.push(reply)));
    const controller = new AbortController();
    const seen: string[] = [];
    const exchange = client.request('ping', {}, { signal: controller.signal, onFrame: ({ header }) => seen.push(header.t) });
    await tick();
    controller.abort(new Error('stop'));
    await expect(exchange).rejects.toMatchObject({ code: 'ABORTED', cause: expect.objectContaining({ message: 'stop' }) });
    replies[0]!({ t: 'pong', id: exchange.id });
    await tick();
    expect(seen).toEqual([]);
    const before = agent.received.length;
    await expect(client.request('ping', {}, { signal: controller.signal })).rejects.toMatchObject({ code: 'ABORTED' });
    await tick();
    expect(agent.received.length).toBe(before);
    answering = true;
    await client.ping(); // the link is fine
  });

  it('close() ends the exchange from the host side; follow-up frames still go out on its id', async () => {
    const { client, agent } = await connect(() => {});
    const exchange = client.request('exec', { argv: ['x'], stdin: true });
    await exchange.send({ t: 'stdin' }, Buffer.from('in'));
    exchange.close();
    await expect(exchange.answer).rejects.toMatchObject({ code: 'AGENT_DISCONNECTED' });
    await exchange.send({ t: 'signal', signal: 'SIGKILL' });
    await tick();
    expect(agent.received.filter((f) => f.id === exchange.id).map((f) => f.t)).toEqual(['exec', 'stdin', 'signal']);
  });
});

/** Answers hellos with `extra` fields, and keeps what each hello carried. */
class HelloAgent extends Duplex {
  private readonly decoder = new FrameDecoder<HostMessage>();
  readonly hellos: { header: HostMessage; body: Buffer }[] = [];

  constructor(private readonly extra: Record<string, unknown>) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error) => void): void {
    for (const { header, body } of this.decoder.push(chunk)) {
      if (header.t !== 'hello') continue;
      this.hellos.push({ header, body: Buffer.from(body) });
      const answer = {
        t: 'hello',
        id: 0,
        nonce: header.nonce,
        protocol: 1,
        version: 'fake',
        os: { id: null, versionId: null, prettyName: null },
        kernel: 'k',
        arch: 'x86_64',
        hostname: 'h',
        pid: 1,
        ...this.extra,
      };
      setImmediate(() => this.push(encodeFrame(answer)));
    }
    callback();
  }

  override _read(): void {}
}

describe('AgentClient.handshake with an identity (a restored clone)', () => {
  const identity = { hostname: 'clone-1', machineId: 'a'.repeat(32), entropy: Buffer.alloc(64, 7) };

  it('sends the identity and the clock with the hello, the entropy as its body', async () => {
    const agent = new HelloAgent({ identity: 'applied' });
    client = new AgentClient(agent);
    const before = Date.now();
    await client.handshake({ identity });
    const [{ header, body }] = agent.hellos as [{ header: HostMessage & { identity?: { timeMs: number } }; body: Buffer }];
    expect(header).toMatchObject({ t: 'hello', identity: { hostname: 'clone-1', machineId: 'a'.repeat(32) } });
    expect(header.identity!.timeMs).toBeGreaterThanOrEqual(before);
    expect(body).toEqual(identity.entropy);
  });

  it('an answer that did not apply it is SNAPSHOT_FAILED, with the reason the agent gave', async () => {
    client = new AgentClient(new HelloAgent({ identityError: 'EIO: ssh-keygen failed' }));
    await expect(client.handshake({ identity })).rejects.toMatchObject({ code: 'SNAPSHOT_FAILED', message: expect.stringMatching(/ssh-keygen failed/) });
    client = new AgentClient(new HelloAgent({}));
    await expect(client.handshake({ identity })).rejects.toMatchObject({ code: 'SNAPSHOT_FAILED' });
  });

  it('a plain hello carries no identity and needs none in the answer', async () => {
    const agent = new HelloAgent({});
    client = new AgentClient(agent);
    await client.handshake();
    expect(agent.hellos[0]?.header).not.toHaveProperty('identity');
    expect(agent.hellos[0]?.body.length).toBe(0);
  });
});
