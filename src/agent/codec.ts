import { kvmtestError } from '../errors.js';
import { type Frame, type HostMessage, MAGIC, MAX_BODY_BYTES, MAX_HEADER_BYTES, PRELUDE_BYTES } from './protocol.js';

/** Encodes one frame: magic, header length, body length, JSON header, body. */
export function encodeFrame(header: { t: string; id: number; [field: string]: unknown } | HostMessage, body?: Uint8Array): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const bodyLength = body?.byteLength ?? 0;
  if (json.length > MAX_HEADER_BYTES) throw kvmtestError('INTERNAL', `frame header of ${json.length} bytes exceeds ${MAX_HEADER_BYTES}`);
  if (bodyLength > MAX_BODY_BYTES) throw kvmtestError('INTERNAL', `frame body of ${bodyLength} bytes exceeds ${MAX_BODY_BYTES}`);
  const prelude = Buffer.allocUnsafe(PRELUDE_BYTES);
  MAGIC.copy(prelude, 0);
  prelude.writeUInt32BE(json.length, 4);
  prelude.writeUInt32BE(bodyLength, 8);
  return Buffer.concat(body && bodyLength > 0 ? [prelude, json, body] : [prelude, json]);
}

type Verdict<M> = { kind: 'need' } | { kind: 'bad'; reason: string } | { kind: 'frame'; frame: Frame<M>; size: number };

/**
 * Incremental frame decoder. Until `synced` is set it skips garbage (the tail of an earlier session
 * left in the port) by hunting for the magic; once synced, a corrupt frame throws AGENT_PROTOCOL.
 * Memory is bounded: it never holds more than one maximal frame plus one incoming chunk.
 */
export class FrameDecoder<M extends { t: string; id: number }> {
  synced = false;
  private chunks: Buffer[] = [];
  private length = 0;
  /** The frame whose header is parsed but whose body is still arriving: not parsed again per chunk. */
  private inProgress: { header: M; headerLength: number; size: number } | undefined;

  /** Feeds bytes; returns the complete frames they finish. */
  push(chunk: Buffer): Frame<M>[] {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.length += chunk.length;
    }
    const frames: Frame<M>[] = [];
    for (;;) {
      const verdict = this.next();
      if (verdict.kind === 'need') return frames;
      if (verdict.kind === 'frame') {
        this.consume(verdict.size);
        frames.push(verdict.frame);
        continue;
      }
      if (this.synced) {
        this.reset();
        throw kvmtestError('AGENT_PROTOCOL', `corrupt frame from the guest agent: ${verdict.reason}`);
      }
      this.skipToNextMagic();
    }
  }

  /** Drops buffered bytes, e.g. when the link reconnects. */
  reset(): void {
    this.chunks = [];
    this.length = 0;
    this.inProgress = undefined;
  }

  get buffered(): number {
    return this.length;
  }

  private next(): Verdict<M> {
    if (this.inProgress) return this.length < this.inProgress.size ? { kind: 'need' } : this.complete(this.inProgress);
    if (this.length === 0) return { kind: 'need' };
    if (this.length < 4) return this.magicPrefixOk() ? { kind: 'need' } : { kind: 'bad', reason: 'bad magic' };
    const buf = this.peek(Math.min(this.length, PRELUDE_BYTES));
    if (!buf.subarray(0, 4).equals(MAGIC)) return { kind: 'bad', reason: 'bad magic' };
    if (buf.length < PRELUDE_BYTES) return { kind: 'need' };
    const headerLength = buf.readUInt32BE(4);
    const bodyLength = buf.readUInt32BE(8);
    if (headerLength < 2 || headerLength > MAX_HEADER_BYTES) return { kind: 'bad', reason: `header length ${headerLength}` };
    if (bodyLength > MAX_BODY_BYTES) return { kind: 'bad', reason: `body length ${bodyLength}` };
    if (this.length < PRELUDE_BYTES + headerLength) return { kind: 'need' };
    const headBuf = this.peek(PRELUDE_BYTES + headerLength).subarray(PRELUDE_BYTES);
    let header: unknown;
    try {
      header = JSON.parse(headBuf.toString('utf8'));
    } catch {
      return { kind: 'bad', reason: 'header is not JSON' };
    }
    if (!isHeader(header)) return { kind: 'bad', reason: 'header lacks a string "t" and an integer "id"' };
    const frame = { header: header as M, headerLength, size: PRELUDE_BYTES + headerLength + bodyLength };
    if (this.length < frame.size) {
      this.inProgress = frame;
      return { kind: 'need' };
    }
    return this.complete(frame);
  }

  private complete({ header, headerLength, size }: { header: M; headerLength: number; size: number }): Verdict<M> {
    this.inProgress = undefined;
    const all = this.peek(size);
    // copy the body out so the frame does not pin the whole receive buffer
    const body = Buffer.from(all.subarray(PRELUDE_BYTES + headerLength, size));
    return { kind: 'frame', frame: { header, body }, size };
  }

  private magicPrefixOk(): boolean {
    const buf = this.peek(this.length);
    return MAGIC.subarray(0, buf.length).equals(buf);
  }

  /** Returns the first n buffered bytes as one buffer (joining chunks only when needed). */
  private peek(n: number): Buffer {
    if (this.chunks[0]!.length < n) {
      const joined = Buffer.concat(this.chunks, this.length);
      this.chunks = [joined];
    }
    return this.chunks[0]!.subarray(0, n);
  }

  private consume(n: number): void {
    let left = n;
    while (left > 0) {
      const first = this.chunks[0]!;
      if (first.length <= left) {
        this.chunks.shift();
        left -= first.length;
      } else {
        this.chunks[0] = first.subarray(left);
        left = 0;
      }
    }
    this.length -= n;
  }

  private skipToNextMagic(): void {
    const all = this.peek(this.length);
    const at = all.indexOf(MAGIC, 1);
    if (at >= 0) return this.consume(at);
    // keep a tail that may be the start of a magic split across chunks
    let keep = 0;
    for (let k = Math.min(3, all.length - 1); k > 0; k--) {
      if (MAGIC.subarray(0, k).equals(all.subarray(all.length - k))) {
        keep = k;
        break;
      }
    }
    this.consume(all.length - keep);
  }
}

function isHeader(value: unknown): value is { t: string; id: number } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  return typeof v.t === 'string' && typeof v.id === 'number' && Number.isInteger(v.id) && v.id >= 0;
}
