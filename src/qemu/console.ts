import { createWriteStream, type WriteStream } from 'node:fs';
import type { Readable } from 'node:stream';

export type ConsoleVerdict = { kind: 'panic'; line: string } | { kind: 'not-bootable'; line: string } | { kind: 'no-cloud-init'; line: string };

const PANIC = /Kernel panic - not syncing|---\[ end Kernel panic/;
const NOT_BOOTABLE = /No bootable device|Boot failed: not a bootable disk|Boot failed: could not read the boot disk/;

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
  return undefined;
}

/**
 * The guest's serial console: appended to a log file, the last lines kept in memory for error
 * messages, and each line judged for fatal signs.
 */
export class ConsoleLog {
  private readonly tail: string[] = [];
  private partial = '';
  private readonly file: WriteStream;
  private readonly listeners = new Set<(verdict: ConsoleVerdict) => void>();
  private readonly lineListeners = new Set<(line: string) => void>();
  private sawCloudInit = false;
  private sawLogin = false;

  constructor(readonly path: string, private readonly keep = 50) {
    this.file = createWriteStream(path, { flags: 'a', mode: 0o600 });
    this.file.on('error', () => {});
  }

  attach(stream: Readable): void {
    stream.on('data', (chunk: Buffer) => this.write(chunk));
    stream.on('error', () => {});
  }

  write(chunk: Buffer): void {
    this.file.write(chunk);
    const text = this.partial + chunk.toString('utf8');
    const lines = text.split(/\r?\n/);
    this.partial = lines.pop() ?? '';
    for (const raw of lines) this.addLine(raw);
    // a getty's prompt waits for input without a newline
    if (this.partial) this.judgeLogin(this.partial.replace(/\x1b\[[0-9;?]*[A-Za-z]|\r/g, ''));
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
    const lines = this.partial ? [...this.tail, this.partial] : this.tail;
    return lines.slice(-n).join('\n');
  }

  /** Flushes and closes the log file; safe to call again. */
  close(): Promise<void> {
    this.closing ??= new Promise((resolve) => this.file.end(resolve));
    return this.closing;
  }

  private closing: Promise<void> | undefined;

  private addLine(raw: string): void {
    // strip ANSI escapes and stray CRs that firmware and systemd print
    const line = raw.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1bc|\r/g, '');
    this.tail.push(line);
    if (this.tail.length > this.keep) this.tail.shift();
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
