import { Transform } from 'node:stream';

/** Longest line kept, in bytes; the rest of a longer line is dropped and counted. */
export const MAX_LINE_BYTES = 64 * 1024;

/** What replaces the dropped part of an over-long line. */
export const cutMarker = (bytes: number): string => `…[${bytes} bytes cut]`;

/**
 * Splits a byte stream into lines, incrementally: each chunk is scanned once, a line is decoded as
 * UTF-8 only when complete (so a character split across chunks decodes whole), a trailing CR is
 * dropped, and a line longer than maxLineBytes keeps its head plus a cut marker. It never holds more
 * than maxLineBytes of an unfinished line, whatever the guest sends.
 */
export class LineSplitter {
  // the unfinished line's kept bytes, reused from line to line; grows to at most maxLineBytes
  private buf = Buffer.alloc(0);
  private kept = 0;
  private cut = 0;

  constructor(private readonly maxLineBytes = MAX_LINE_BYTES) {}

  /** Feeds bytes; returns the lines they finish. */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let from = 0;
    for (let nl = chunk.indexOf(10, from); nl >= 0; nl = chunk.indexOf(10, from)) {
      this.keep(chunk, from, nl);
      lines.push(this.take());
      from = nl + 1;
    }
    if (from < chunk.length) this.keep(chunk, from, chunk.length);
    return lines;
  }

  /** The unfinished line, if any (the stream ended without a newline). */
  end(): string[] {
    return this.kept > 0 || this.cut > 0 ? [this.take()] : [];
  }

  /** Bytes of the unfinished line held now (at most maxLineBytes). */
  get pendingBytes(): number {
    return this.kept;
  }

  /** The unfinished line decoded, without consuming it (for prompts that wait without a newline). */
  pending(): string {
    return this.buf.toString('utf8', 0, this.kept);
  }

  private keep(chunk: Buffer, from: number, to: number): void {
    const room = this.maxLineBytes - this.kept;
    const n = Math.min(room, to - from);
    if (n > 0) {
      if (this.kept + n > this.buf.length) {
        const grown = Buffer.allocUnsafe(Math.min(this.maxLineBytes, Math.max(256, 2 * this.buf.length, this.kept + n)));
        this.buf.copy(grown, 0, 0, this.kept);
        this.buf = grown;
      }
      chunk.copy(this.buf, this.kept, from, from + n);
    }
    this.kept += n;
    this.cut += to - from - n;
  }

  private take(): string {
    let bytes = this.buf.subarray(0, this.kept);
    if (this.cut > 0) bytes = bytes.subarray(0, charBoundary(bytes, bytes.length));
    let line = bytes.toString('utf8');
    if (this.cut === 0 && line.endsWith('\r')) line = line.slice(0, -1);
    if (this.cut > 0) line += cutMarker(this.cut + this.kept - bytes.length);
    this.kept = 0;
    this.cut = 0;
    return line;
  }
}

/** The largest offset ≤ at that does not split a UTF-8 character. */
function charBoundary(bytes: Buffer, at: number): number {
  let i = at;
  // step back over continuation bytes (10xxxxxx) to the start of the last character
  while (i > 0 && i > at - 4 && (bytes[i - 1]! & 0xc0) === 0x80) i--;
  if (i === 0) return at;
  const lead = bytes[i - 1]!;
  const width = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return at - (i - 1) >= width ? at : i - 1;
}

/** A stream of Buffers in, a stream of lines (strings, object mode) out, with backpressure. */
export function lineStream(maxLineBytes = MAX_LINE_BYTES): Transform {
  const splitter = new LineSplitter(maxLineBytes);
  return new Transform({
    readableObjectMode: true,
    transform(chunk: Buffer, _encoding, callback) {
      for (const line of splitter.push(chunk)) this.push(line);
      callback();
    },
    flush(callback) {
      for (const line of splitter.end()) this.push(line);
      callback();
    },
  });
}
