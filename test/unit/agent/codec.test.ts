import { randomBytes } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { encodeFrame, FrameDecoder } from '../../../src/agent/codec.js';
import { type AgentMessage, MAX_BODY_BYTES, MAX_HEADER_BYTES } from '../../../src/agent/protocol.js';
import { KvmtestError } from '../../../src/errors.js';

const frame = (t: string, id: number, body?: Buffer, extra: Record<string, unknown> = {}) => encodeFrame({ t, id, ...extra }, body);

function synced() {
  const decoder = new FrameDecoder<AgentMessage>();
  decoder.synced = true;
  return decoder;
}

describe('frame codec', () => {
  it('round-trips a header and a binary body', () => {
    const body = Buffer.from([0, 255, 10, 13, 0x4b, 0x56]);
    const [decoded] = synced().push(frame('stdout', 7, body));
    expect(decoded!.header).toEqual({ t: 'stdout', id: 7 });
    expect(decoded!.body.equals(body)).toBe(true);
  });

  it('reassembles frames split at every possible byte', () => {
    const wire = Buffer.concat([frame('stdout', 1, randomBytes(300)), frame('exit', 1, undefined, { code: 0, signal: null })]);
    for (let cut = 1; cut < wire.length; cut++) {
      const decoder = synced();
      const frames = [...decoder.push(wire.subarray(0, cut)), ...decoder.push(wire.subarray(cut))];
      expect(frames.map((f) => f.header.t)).toEqual(['stdout', 'exit']);
      expect(decoder.buffered).toBe(0);
    }
  });

  it('decodes many frames merged into one chunk, in order', () => {
    const wire = Buffer.concat(Array.from({ length: 50 }, (_, i) => frame('stdout', i, Buffer.from(String(i)))));
    const frames = synced().push(wire);
    expect(frames.map((f) => f.body.toString())).toEqual(Array.from({ length: 50 }, (_, i) => String(i)));
  });

  it('before sync, skips garbage and torn frames until a valid frame', () => {
    const decoder = new FrameDecoder<AgentMessage>();
    const hello = frame('hello', 0, undefined, { nonce: 'n' });
    const tornPrelude = frame('stdout', 3, Buffer.alloc(100)).subarray(0, 10);
    const frames = decoder.push(Buffer.concat([Buffer.from('garbage KVT'), tornPrelude, Buffer.from('KVT1\xff\xff'), hello]));
    expect(frames.at(-1)!.header).toMatchObject({ t: 'hello', nonce: 'n' });
  });

  it('a torn frame with an intact header may swallow what follows: the repeated hello gets through', () => {
    const decoder = new FrameDecoder<AgentMessage>();
    const hello = frame('hello', 0, undefined, { nonce: 'n' });
    const torn = frame('stdout', 3, Buffer.alloc(100)).subarray(0, 40);
    const first = decoder.push(Buffer.concat([torn, hello]));
    expect(first.some((f) => f.header.t === 'hello')).toBe(false);
    const frames = [...decoder.push(hello), ...decoder.push(hello), ...decoder.push(hello)];
    expect(frames.some((f) => f.header.t === 'hello')).toBe(true);
  });

  it('after sync, a corrupt frame is a protocol error', () => {
    const decoder = synced();
    expect(() => decoder.push(Buffer.from('XXXX0000000000'))).toThrowError(expect.objectContaining({ code: 'AGENT_PROTOCOL' }));
  });

  it('refuses oversized lengths without waiting for or allocating them', () => {
    const huge = Buffer.alloc(12);
    Buffer.from('KVT1').copy(huge);
    huge.writeUInt32BE(10, 4);
    huge.writeUInt32BE(MAX_BODY_BYTES + 1, 8);
    expect(() => synced().push(huge)).toThrow(/body length/);
    huge.writeUInt32BE(MAX_HEADER_BYTES + 1, 4);
    huge.writeUInt32BE(0, 8);
    expect(() => synced().push(huge)).toThrow(/header length/);
  });

  it('rejects headers that are not JSON objects with t and id', () => {
    for (const header of ['[1,2]', '{"t":1,"id":1}', '{"t":"x","id":-1}', '{"t":"x"}', 'nope']) {
      const json = Buffer.from(header);
      const prelude = Buffer.alloc(12);
      Buffer.from('KVT1').copy(prelude);
      prelude.writeUInt32BE(json.length, 4);
      expect(() => synced().push(Buffer.concat([prelude, json]))).toThrowError(KvmtestError);
    }
  });

  it('encoder refuses bodies over the limit', () => {
    expect(() => encodeFrame({ t: 'data', id: 1 }, Buffer.alloc(MAX_BODY_BYTES + 1))).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });

  it('survives random and mutated input (fuzz, bounded time): throws only protocol errors, buffers stay bounded', () => {
    const valid = Buffer.concat([frame('stdout', 1, randomBytes(64)), frame('exit', 1, undefined, { code: 0, signal: null })]);
    const deadline = Date.now() + 1500;
    let runs = 0;
    while (Date.now() < deadline) {
      runs++;
      const input = Buffer.from(runs % 2 ? randomBytes(1 + (runs % 200)) : valid);
      if (runs % 2 === 0) for (let k = 0; k < 1 + (runs % 5); k++) input[(runs * 7919 + k * 104729) % input.length] = runs & 0xff;
      for (const decoder of [synced(), new FrameDecoder<AgentMessage>()]) {
        try {
          decoder.push(input);
        } catch (error) {
          expect((error as KvmtestError).code).toBe('AGENT_PROTOCOL');
        }
        expect(decoder.buffered).toBeLessThanOrEqual(input.length);
      }
    }
    expect(runs).toBeGreaterThan(100);
  });
});

describe('frame decoder work per chunk', () => {
  it('parses the header of a large frame once, not once per chunk of its body', () => {
    const frame = encodeFrame({ t: 'stdout', id: 1 }, Buffer.alloc(1024 * 1024, 7));
    const decoder = new FrameDecoder<{ t: string; id: number }>();
    decoder.synced = true;
    const parse = vi.spyOn(JSON, 'parse');
    const frames = [];
    try {
      for (let at = 0; at < frame.length; at += 1024) frames.push(...decoder.push(frame.subarray(at, at + 1024)));
      expect(parse.mock.calls.length).toBeLessThanOrEqual(2);
    } finally {
      parse.mockRestore();
    }
    expect(frames).toHaveLength(1);
    expect(frames[0]!.body.length).toBe(1024 * 1024);
  });
});
