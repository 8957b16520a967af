import { PassThrough, type Readable, Writable } from 'node:stream';
import { KvmtestError, kvmtestError } from '../errors.js';
import { lineStream } from '../util/lines.js';
import { describe } from '../util/units.js';
import type { AgentClient, Exchange } from './client.js';
import { CreditWindow } from './credit.js';
import { CHUNK_BYTES, type RequestFields, type SignalName, type TerminalSize } from './protocol.js';

export interface ExecOptions {
  cwd?: string;
  /** Added to the agent's environment (PATH and HOME have defaults there). */
  env?: Record<string, string>;
  /** Bytes for the command's stdin; without it stdin is /dev/null (spawn() gives a writable stdin instead). */
  input?: string | Uint8Array;
  /** Milliseconds; when it passes the command gets SIGTERM, then SIGKILL after `killGraceMs`. */
  timeoutMs?: number;
  killGraceMs?: number;
  signal?: AbortSignal;
  /** Keep the output in the result (default true); turn off for huge streams you consume live. */
  buffer?: boolean;
  /**
   * Most bytes kept per stream in the result (default 64 MiB, Infinity for no limit). Past it the
   * command's process group gets SIGKILL and the result rejects with OUTPUT_LIMIT, carrying the
   * output kept so far.
   */
  maxBuffer?: number;
  /** 'pipe' gives the process a writable `stdin` you must end; default 'ignore' (/dev/null) unless `input` is set. */
  stdin?: 'pipe' | 'ignore';
  /**
   * Run on a terminal (a pty in the guest) of this size, as its controlling terminal: for shells and
   * programs that want one. stdout carries everything the terminal shows (stderr stays empty), stdin
   * is a pipe (what you write is typed: Ctrl-C as \x03 reaches the foreground process), resize() changes
   * the size. `true` is 24 × 80.
   */
  tty?: boolean | TerminalSize;
}

/** How the host consumes the process: exec() only wants the result, spawn() also the live streams. */
export interface ConsumerMode {
  live: boolean;
}

/** What a finished command left: exit status and its output, byte-exact. */
export class ExecResult {
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly signal: SignalName | null,
    readonly stdoutBytes: Buffer,
    readonly stderrBytes: Buffer,
    readonly durationMs: number,
  ) {}
  get stdout(): string {
    return this.stdoutBytes.toString('utf8');
  }
  get stderr(): string {
    return this.stderrBytes.toString('utf8');
  }
  /** True when the command exited with status 0. */
  get ok(): boolean {
    return this.exitCode === 0;
  }
}

export type ExecTarget = { argv: string[] } | { shell: string };

export const DEFAULT_MAX_BUFFER = 64 * 1024 * 1024;
/**
 * A live stream's buffer before its reader counts as behind and the link is held: large, so that a
 * command whose modest output is read late (a server's log) does not stall the other requests.
 */
export const LIVE_BUFFER_BYTES = 8 * 1024 * 1024;

function checkMaxBuffer(value: unknown): number {
  if (value === undefined) return DEFAULT_MAX_BUFFER;
  if (value === Infinity || (typeof value === 'number' && Number.isSafeInteger(value) && value > 0)) return value;
  throw kvmtestError('INVALID_OPTION', `Expected the "maxBuffer" option to be a positive integer number of bytes or Infinity, got ${describe(value)}`);
}

/** Output kept for the result, at most `max` bytes; the first byte past it is noted. */
class OutputBuffer {
  readonly chunks: Buffer[] = [];
  bytes = 0;
  full = false;

  constructor(private readonly max: number) {}

  /** Keeps what fits; false once the limit is passed. */
  add(chunk: Buffer): boolean {
    if (this.full) return false;
    const room = this.max - this.bytes;
    const kept = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (kept.length > 0) this.chunks.push(kept);
    this.bytes += kept.length;
    this.full = kept.length < chunk.length;
    return !this.full;
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.chunks, this.bytes);
  }
}

/**
 * A command running in the guest: live stdout/stderr streams, a writable stdin, kill(),
 * lines(), and awaitable for its ExecResult.
 */
export class GuestProcess implements PromiseLike<ExecResult> {
  // up to ~2 × LIVE_BUFFER_BYTES wait on the host per stream before the link is held for the reader
  readonly stdout = new PassThrough({ highWaterMark: LIVE_BUFFER_BYTES });
  readonly stderr = new PassThrough({ highWaterMark: LIVE_BUFFER_BYTES });
  readonly stdin: Writable;
  readonly command: string;
  /** The command's pid in the guest, once it started. */
  readonly pid: Promise<number>;
  private readonly result: Promise<ExecResult>;
  private readonly exchange: Exchange<'exec'>;
  /** stdin is paced by the agent's `consumed` frames, so a process that does not read it cannot stall the link. */
  private readonly credit = new CreditWindow();
  private readonly out: OutputBuffer;
  private readonly err: OutputBuffer;
  private readonly client: AgentClient;
  /** Releases of the link holds taken while a live stream is behind, per stream. */
  private readonly holds = new Map<PassThrough, () => void>();
  /** The stream that passed maxBuffer, once one did. */
  private overflowed: 'stdout' | 'stderr' | undefined;
  /** Set on timeout or abort: live streams get no more output, so an unread one cannot hold the link. */
  private discarding = false;
  private readonly started = performance.now();
  private timedOut = false;
  private abortedBy: unknown;
  private finished = false;

  constructor(client: AgentClient, target: ExecTarget, options: ExecOptions = {}, mode: ConsumerMode = { live: true }) {
    this.command = 'argv' in target ? target.argv.join(' ') : target.shell;
    const buffer = options.buffer ?? true;
    const maxBuffer = checkMaxBuffer(options.maxBuffer);
    this.out = new OutputBuffer(maxBuffer);
    this.err = new OutputBuffer(maxBuffer);
    this.client = client;
    const tty = terminalSize(options.tty);
    const stdinOpen = options.input !== undefined || options.stdin === 'pipe' || tty !== undefined;
    // exec() reads only the result: let the live streams drop what nobody reads
    if (!mode.live) {
      this.stdout.resume();
      this.stderr.resume();
    }
    let resolvePid!: (pid: number) => void;
    let rejectPid!: (error: unknown) => void;
    this.pid = new Promise((resolve, reject) => {
      resolvePid = resolve;
      rejectPid = reject;
    });
    this.pid.catch(() => {});
    let settle!: { resolve: (r: ExecResult) => void; reject: (e: unknown) => void };
    this.result = new Promise<ExecResult>((resolve, reject) => {
      settle = { resolve, reject };
    });

    const end = (error?: unknown, exit?: { code: number | null; signal: SignalName | null }) => {
      if (this.finished) return;
      this.finished = true;
      this.exchange.close();
      this.credit.close();
      clearTimers();
      this.releaseHolds();
      this.stdout.end();
      this.stderr.end();
      rejectPid(error ?? new Error('exited'));
      const result = new ExecResult(this.command, exit?.code ?? null, exit?.signal ?? null, this.out.toBuffer(), this.err.toBuffer(), performance.now() - this.started);
      if (error) return settle.reject(attachResult(error, result));
      if (this.overflowed) {
        return settle.reject(
          attachResult(kvmtestError('OUTPUT_LIMIT', `command wrote more than ${maxBuffer} bytes to ${this.overflowed} (the maxBuffer option) and was killed: ${this.command}`), result),
        );
      }
      if (this.timedOut) {
        return settle.reject(attachResult(kvmtestError('EXEC_TIMEOUT', `command timed out after ${options.timeoutMs} ms and was killed: ${this.command}`), result));
      }
      if (this.abortedBy !== undefined) {
        return settle.reject(attachResult(kvmtestError('ABORTED', `command was aborted: ${this.command}`, { cause: this.abortedBy }), result));
      }
      settle.resolve(result);
    };

    const request: RequestFields<'exec'> = {
      ...target,
      stdin: stdinOpen,
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(options.env ? { env: options.env } : {}),
      ...(tty ? { tty } : {}),
    };
    this.exchange = client.request('exec', request, {
      onFrame: ({ header, body }) => {
        switch (header.t) {
          case 'started':
            resolvePid(header.pid);
            break;
          case 'consumed':
            this.credit.grant(header.bytes);
            break;
          case 'stdout':
          case 'stderr':
            if (buffer && !(header.t === 'stdout' ? this.out : this.err).add(body)) this.overflow(header.t);
            this.deliver(this[header.t], body, mode.live);
            break;
        }
      },
    });
    this.exchange.answer.then(
      ({ header }) => end(undefined, header.t === 'exit' ? { code: header.code, signal: header.signal } : undefined),
      (error: unknown) => end(error),
    );

    this.stdin = new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        this.sendStdin(chunk).then(() => callback(), callback);
      },
      final: (callback) => {
        this.exchange.send({ t: 'stdin-end' }).then(() => callback(), callback);
      },
    });
    this.stdin.on('error', () => {});
    if (options.input !== undefined) this.stdin.end(Buffer.from(options.input));
    else if (!stdinOpen) this.stdin.destroy();

    // timeout: polite signal first, then force
    let killTimer: NodeJS.Timeout | undefined;
    const timeoutTimer =
      options.timeoutMs !== undefined
        ? setTimeout(() => {
            this.timedOut = true;
            this.terminate(options.killGraceMs ?? 3000, (t) => (killTimer = t));
          }, options.timeoutMs)
        : undefined;
    const onAbort = () => {
      this.abortedBy = options.signal!.reason;
      this.terminate(options.killGraceMs ?? 3000, (t) => (killTimer = t));
    };
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
    const clearTimers = () => {
      clearTimeout(timeoutTimer);
      clearTimeout(killTimer);
      options.signal?.removeEventListener('abort', onAbort);
    };
  }

  /** Writes to a live stream; when its reader is behind, holds the link until it drains (see AgentClient.hold). */
  private deliver(stream: PassThrough, body: Buffer, live: boolean): void {
    if (this.discarding) return;
    if (stream.write(body) || !live || this.finished || this.holds.has(stream)) return;
    this.holds.set(stream, this.client.hold());
    stream.once('drain', () => {
      this.holds.get(stream)?.();
      this.holds.delete(stream);
    });
  }

  private releaseHolds(): void {
    for (const release of this.holds.values()) release();
    this.holds.clear();
  }

  /** Past maxBuffer: the rest is not kept, the command's group is killed, the result will say OUTPUT_LIMIT. */
  private overflow(stream: 'stdout' | 'stderr'): void {
    if (this.overflowed) return;
    this.overflowed = stream;
    this.kill('SIGKILL');
  }

  /** Sends a signal to the command's process group in the guest. */
  kill(signal: SignalName = 'SIGTERM'): void {
    if (this.finished) return;
    this.exchange.send({ t: 'signal', signal }).catch(() => {});
  }

  /** A command on a terminal (the `tty` option): its new size, in rows and columns. */
  resize(size: TerminalSize): void {
    const checked = terminalSize(size)!;
    if (this.finished) return;
    this.exchange.send({ t: 'resize', ...checked }).catch(() => {});
  }

  /** Lines of output as they arrive: stdout and stderr interleaved ('all', default) or one of them. */
  async *lines(from: 'all' | 'stdout' | 'stderr' = 'all'): AsyncGenerator<string> {
    // each stream split on its own, so a partial line of one is not glued to the other's
    const split = (stream: PassThrough) => stream.pipe(lineStream());
    const source = from === 'all' ? merge(split(this.stdout), split(this.stderr)) : split(this[from]);
    for await (const line of source) yield line as string;
    await this.result;
  }

  then<A = ExecResult, B = never>(onfulfilled?: ((value: ExecResult) => A | PromiseLike<A>) | null, onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<A | B> {
    return this.result.then(onfulfilled, onrejected);
  }

  private async sendStdin(chunk: Buffer): Promise<void> {
    for (let at = 0; at < chunk.length && !this.finished; at += CHUNK_BYTES) {
      const piece = chunk.subarray(at, at + CHUNK_BYTES);
      await this.credit.take(piece.length);
      if (this.finished) return; // the command ended while we waited: nobody reads the rest
      await this.exchange.send({ t: 'stdin' }, piece);
    }
  }

  private terminate(graceMs: number, setKillTimer: (t: NodeJS.Timeout) => void): void {
    // the exit frame queues behind the output: stop waiting for a reader that may never come
    this.discarding = true;
    this.releaseHolds();
    this.kill('SIGTERM');
    setKillTimer(setTimeout(() => this.kill('SIGKILL'), graceMs));
  }
}

function attachResult(error: unknown, result: ExecResult): unknown {
  if (error instanceof KvmtestError) Object.assign(error, { result });
  return error;
}

/** Interleaves two line streams in arrival order, with backpressure. */
function merge(a: Readable, b: Readable): Readable {
  const out = new PassThrough({ objectMode: true });
  let open = 2;
  for (const stream of [a, b]) {
    stream.pipe(out, { end: false });
    stream.on('end', () => --open === 0 && out.end());
  }
  return out;
}

/** The `tty` option as a size; INVALID_OPTION for rows or columns that are not whole numbers from 1 to 65535. */
function terminalSize(tty: boolean | TerminalSize | undefined): TerminalSize | undefined {
  if (tty === undefined || tty === false) return undefined;
  const size = tty === true ? { rows: 24, cols: 80 } : { rows: tty.rows, cols: tty.cols };
  for (const [name, n] of Object.entries(size)) {
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw kvmtestError('INVALID_OPTION', `Expected the terminal's ${name} to be a whole number from 1 to 65535, got ${String(n)}`);
  }
  return size;
}
