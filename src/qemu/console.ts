import { createWriteStream, type WriteStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { LineSplitter } from '../util/lines.js';
import { TailBuffer } from '../util/tail.js';

export type ConsoleVerdict = { kind: 'panic'; line: string } | { kind: 'not-bootable'; line: string } | { kind: 'no-root'; line: string } | { kind: 'no-cloud-init'; line: string };

const PANIC = /Kernel panic - not syncing|---\[ end Kernel panic/;
const NOT_BOOTABLE = /No bootable device|Boot failed: not a bootable disk|Boot failed: could not read the boot disk/;
/** initramfs-tools gave up on the root file system and dropped to its shell: nothing more will happen. */
const NO_ROOT = /^Failed to mount \S+ as root file system|^Gave up waiting for root file system device|^ALERT! .* does not exist\. +Dropping to a shell!/;

// a getty's prompt; kernel messages may follow it on the same line
const LOGIN_PROMPT = /^(?!Last )\S+ login:(\s|$)/;
const CLOUD_INIT = /cloud-init|cloud-config|cloudinit/i;

/**
 * A login prompt before any word of cloud-init: the system finished booting without it (systemd
 * and OpenRC both name cloud-init's services on the console as they start them). Pure.
 */
export function judgeLoginPrompt(line: string, sawCloudInit: boolean): ConsoleVerdict | undefined {
  return !sawCloudInit && LOGIN_PROMPT.test(line.trim()) ? { kind: 'no-cloud-init', line } : undefined;
}

/** Classifies one console line: a kernel panic or a firmware that found nothing to boot. Pure. */
export function judgeConsoleLine(line: string): ConsoleVerdict | undefined {
  if (PANIC.test(line)) return { kind: 'panic', line };
  if (NOT_BOOTABLE.test(line)) return { kind: 'not-bootable', line };
  if (NO_ROOT.test(line.trim())) return { kind: 'no-root', line };
  return undefined;
}

/** console.log keeps the first headBytes and the last tailBytes of the console; what lies between is dropped and counted. */
export interface ConsoleCaps {
  headBytes: number;
  tailBytes: number;
}
export const CONSOLE_CAPS: ConsoleCaps = { headBytes: 8 * 1024 * 1024, tailBytes: 2 * 1024 * 1024 };
/** An unfinished line longer than this is not judged as a login prompt (a prompt is short). */
const PROMPT_BYTES = 512;
/** lastLines() shows at most this much of an unfinished line. */
const PARTIAL_CHARS = 4000;

/**
 * The guest's serial console: appended to a log file (head and tail kept, the middle dropped past the
 * caps), the last lines kept in memory for error messages, and each line judged for fatal signs.
 * Each chunk is scanned once and an unfinished line is held to MAX_LINE_BYTES, so a guest flooding
 * the console costs linear CPU and bounded memory.
 */
export class ConsoleLog {
  private readonly tail: TailBuffer;
  private readonly lines = new LineSplitter();
  private readonly file: WriteStream;
  private readonly listeners = new Set<(verdict: ConsoleVerdict) => void>();
  private readonly lineListeners = new Set<(line: string) => void>();
  private sawCloudInit = false;
  private sawLogin = false;
  private logged = 0;
  /** Past the head: a circular buffer of the last tailBytes, and the count of all bytes past the head. */
  private ring: Buffer | undefined;
  private ringAt = 0;
  private ringFull = false;
  private beyondHead = 0;

  constructor(
    readonly path: string,
    private readonly keep = 50,
    private readonly caps: ConsoleCaps = CONSOLE_CAPS,
  ) {
    this.tail = new TailBuffer(keep, 16_000);
    this.file = createWriteStream(path, { flags: 'a', mode: 0o600 });
    this.file.on('error', () => {});
  }

  attach(stream: Readable): void {
    stream.on('data', (chunk: Buffer) => this.write(chunk));
    stream.on('error', () => {});
  }

  write(chunk: Buffer): void {
    this.log(chunk);
    for (const raw of this.lines.push(chunk)) this.addLine(raw);
    // a getty's prompt waits for input without a newline
    if (!this.sawLogin && this.lines.pendingBytes > 0 && this.lines.pendingBytes <= PROMPT_BYTES) this.judgeLogin(strip(this.lines.pending()));
  }

  /** Bytes of the unfinished line held in memory (bounded by MAX_LINE_BYTES). */
  get pendingBytes(): number {
    return this.lines.pendingBytes;
  }

  /** Console bytes not written to the log file (the middle of a console larger than the caps). */
  get droppedBytes(): number {
    return this.beyondHead - this.ringKept();
  }

  onFatal(listener: (verdict: ConsoleVerdict) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onLine(listener: (line: string) => void): () => void {
    this.lineListeners.add(listener);
    return () => this.lineListeners.delete(listener);
  }

  /** The last lines (50 by default), including an unfinished one. */
  lastLines(n = this.keep): string {
    const lines = this.tail.last(n);
    if (this.lines.pendingBytes > 0) {
      const partial = this.lines.pending();
      lines.push(partial.length > PARTIAL_CHARS ? `${partial.slice(0, PARTIAL_CHARS)}…` : partial);
    }
    return lines.slice(-n).join('\n');
  }

  /** Writes the kept tail, flushes and closes the log file; safe to call again. */
  close(): Promise<void> {
    this.closing ??= new Promise((resolve) => {
      if (this.ring) {
        const dropped = this.droppedBytes;
        if (dropped > 0) this.file.write(`\n[kvmtest: ${dropped} bytes of console output dropped here: the log keeps the first ${this.caps.headBytes} and the last ${this.caps.tailBytes} bytes]\n`);
        this.file.write(this.ringFull ? Buffer.concat([this.ring.subarray(this.ringAt), this.ring.subarray(0, this.ringAt)]) : this.ring.subarray(0, this.ringAt));
        this.ring = undefined;
      }
      this.file.end(resolve);
    });
    return this.closing;
  }

  private closing: Promise<void> | undefined;

  /** The head goes to the file; past it, bytes go round a ring of tailBytes (written at close). */
  private log(chunk: Buffer): void {
    if (this.closing) return;
    const room = Math.max(0, this.caps.headBytes - this.logged);
    if (room > 0) {
      const head = chunk.subarray(0, room);
      this.file.write(head);
      this.logged += head.length;
      if (head.length === chunk.length) return;
    }
    let rest = chunk.subarray(room);
    this.beyondHead += rest.length;
    const size = this.caps.tailBytes;
    if (size === 0) return;
    this.ring ??= Buffer.allocUnsafe(size);
    if (rest.length >= size) {
      rest = rest.subarray(rest.length - size);
      this.ringAt = 0;
    }
    const first = Math.min(rest.length, size - this.ringAt);
    rest.copy(this.ring, this.ringAt, 0, first);
    rest.copy(this.ring, 0, first);
    if (this.ringAt + rest.length >= size) this.ringFull = true;
    this.ringAt = (this.ringAt + rest.length) % size;
  }

  private ringKept(): number {
    return this.ringFull ? this.caps.tailBytes : this.ringAt;
  }

  private addLine(raw: string): void {
    const line = strip(raw);
    this.tail.push(line);
    for (const listener of this.lineListeners) listener(line);
    // the kernel echoes its command line, which may say cloud-init=disabled
    if (CLOUD_INIT.test(line) && !/command line/i.test(line)) this.sawCloudInit = true;
    const verdict = judgeConsoleLine(line);
    if (verdict) this.report(verdict);
    this.judgeLogin(line);
  }

  private judgeLogin(line: string): void {
    if (this.sawLogin) return;
    const verdict = judgeLoginPrompt(line, this.sawCloudInit);
    if (!verdict && !LOGIN_PROMPT.test(line.trim())) return;
    this.sawLogin = true;
    if (verdict) this.report(verdict);
  }

  private report(verdict: ConsoleVerdict): void {
    for (const listener of this.listeners) listener(verdict);
  }
}

/** Strips ANSI escapes and stray CRs that firmware and systemd print. */
function strip(raw: string): string {
  return raw.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1bc|\r/g, '');
}
