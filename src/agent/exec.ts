import { PassThrough, Readable, Writable } from 'node:stream';
import { createInterface } from 'node:readline';
import { GuestCommandError, KvmtestError } from '../errors.js';
import type { AgentClient, Channel } from './client.js';
import { CreditWindow } from './credit.js';
import { CHUNK_BYTES, type AgentMessage, type ExecRequest, type Frame, type SignalName } from './protocol.js';

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
  /** 'pipe' gives the process a writable `stdin` you must end; default 'ignore' (/dev/null) unless `input` is set. */
  stdin?: 'pipe' | 'ignore';
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

/**
 * A command running in the guest: live stdout/stderr streams, a writable stdin, kill(),
 * lines(), and awaitable for its ExecResult.
 */
export class GuestProcess implements PromiseLike<ExecResult> {
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  readonly stdin: Writable;
  readonly command: string;
  /** The command's pid in the guest, once it started. */
  readonly pid: Promise<number>;
  private readonly result: Promise<ExecResult>;
  private readonly channel: Channel;
  /** stdin is paced by the agent's `consumed` frames, so a process that does not read it cannot stall the link. */
  private readonly credit = new CreditWindow();
  private readonly out: Buffer[] = [];
  private readonly err: Buffer[] = [];
  private readonly started = performance.now();
  private timedOut = false;
  private abortedBy: unknown;
  private finished = false;

  constructor(client: AgentClient, target: ExecTarget, options: ExecOptions = {}, mode: ConsumerMode = { live: true }) {
    this.command = 'argv' in target ? target.argv.join(' ') : target.shell;
    const buffer = options.buffer ?? true;
    const stdinOpen = options.input !== undefined || options.stdin === 'pipe';
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
      this.channel.close();
      this.credit.close();
      clearTimers();
      this.stdout.end();
      this.stderr.end();
      rejectPid(error ?? new Error('exited'));
      const result = new ExecResult(this.command, exit?.code ?? null, exit?.signal ?? null, Buffer.concat(this.out), Buffer.concat(this.err), performance.now() - this.started);
      if (error) return settle.reject(attachResult(error, result));
      if (this.timedOut) {
        return settle.reject(attachResult(new GuestCommandError('EXEC_TIMEOUT', `command timed out after ${options.timeoutMs} ms and was killed: ${this.command}`), result));
      }
      if (this.abortedBy !== undefined) {
        return settle.reject(attachResult(new GuestCommandError('ABORTED', `command was aborted: ${this.command}`, { cause: this.abortedBy }), result));
      }
      settle.resolve(result);
    };

    this.channel = client.open({
      onFrame: (frame: Frame<AgentMessage>) => {
        const { header, body } = frame;
        switch (header.t) {
          case 'started':
            resolvePid(header.pid);
            break;
          case 'consumed':
            this.credit.grant(header.bytes);
            break;
          case 'stdout':
            if (buffer) this.out.push(body);
            this.stdout.write(body);
            break;
          case 'stderr':
            if (buffer) this.err.push(body);
            this.stderr.write(body);
            break;
          case 'exit':
            end(undefined, { code: header.code, signal: header.signal });
            break;
          case 'error':
            end(
              header.code === 'ENOENT'
                ? new GuestCommandError('COMMAND_NOT_FOUND', `${header.message} (in the guest)`)
                : new GuestCommandError('GUEST_IO', `exec failed in the guest: ${header.code}: ${header.message}`),
            );
            break;
        }
      },
      onLinkError: (error: KvmtestError) => end(error),
    });

    const request: Omit<ExecRequest, 'id'> = { t: 'exec', ...target, stdin: stdinOpen, ...(options.cwd ? { cwd: options.cwd } : {}), ...(options.env ? { env: options.env } : {}) };
    this.channel.send(request).catch((error) => end(error));

    this.stdin = new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        this.sendStdin(chunk).then(() => callback(), callback);
      },
      final: (callback) => {
        this.channel.send({ t: 'stdin-end' }).then(() => callback(), callback);
      },
    });
    this.stdin.on('error', () => {});
    if (options.input !== undefined) this.stdin.end(Buffer.from(options.input));
    else if (!stdinOpen) this.stdin.destroy();

    // timeout: polite signal first, then force
    let killTimer: NodeJS.Timeout | undefined;
    const timeoutTimer = options.timeoutMs !== undefined
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

  /** Sends a signal to the command's process group in the guest. */
  kill(signal: SignalName = 'SIGTERM'): void {
    if (this.finished) return;
    this.channel.send({ t: 'signal', signal }).catch(() => {});
  }

  /** Lines of output as they arrive: stdout and stderr interleaved ('all', default) or one of them. */
  async *lines(from: 'all' | 'stdout' | 'stderr' = 'all'): AsyncGenerator<string> {
    const source = from === 'all' ? merge(this.stdout, this.stderr) : this[from];
    const reader = createInterface({ input: source, crlfDelay: Infinity });
    for await (const line of reader) yield line;
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
      await this.channel.send({ t: 'stdin' }, piece);
    }
  }

  private terminate(graceMs: number, setKillTimer: (t: NodeJS.Timeout) => void): void {
    this.kill('SIGTERM');
    setKillTimer(setTimeout(() => this.kill('SIGKILL'), graceMs));
  }
}

function attachResult(error: unknown, result: ExecResult): unknown {
  if (error instanceof KvmtestError) Object.assign(error, { result });
  return error;
}

/** Interleaves two byte streams in arrival order. */
function merge(a: Readable, b: Readable): Readable {
  const out = new PassThrough();
  let open = 2;
  for (const stream of [a, b]) {
    stream.on('data', (chunk) => out.write(chunk));
    stream.on('end', () => --open === 0 && out.end());
  }
  return out;
}
