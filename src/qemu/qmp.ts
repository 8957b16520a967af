import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import createDebug from 'debug';
import { kvmtestError } from '../errors.js';

const debug = createDebug('kvmtest:qmp');

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

type Pending = { resolve: (value: unknown) => void; reject: (error: unknown) => void; command: string };

/**
 * A QMP (QEMU Machine Protocol) client: JSON lines over the control socket. Negotiates
 * capabilities on connect, runs commands with ids, emits asynchronous events as 'event'.
 */
export class QmpClient extends EventEmitter<{ event: [QmpEvent]; close: [] }> {
  private readonly pending = new Map<string, Pending>();
  private nextId = 1;
  private closed = false;

  private constructor(private readonly socket: Socket) {
    super();
    const lines = createInterface({ input: socket, crlfDelay: Infinity });
    lines.on('line', (line) => this.onLine(line));
    // a reset when QEMU quits is the end of the session, not an error
    lines.on('error', () => {});
    socket.on('error', (error) => debug('socket error: %s', error.message));
    socket.on('close', () => {
      this.closed = true;
      for (const p of this.pending.values()) p.reject(kvmtestError('QMP_ERROR', `QMP connection closed during ${p.command}`));
      this.pending.clear();
      this.emit('close');
    });
  }

  /** Connects to a QMP socket (retrying while QEMU creates it) and negotiates capabilities. */
  static async connect(path: string, options: { signal?: AbortSignal; retryMs?: number } = {}): Promise<QmpClient> {
    const socket = await connectWithRetry(path, options.signal, options.retryMs ?? 50);
    const client = new QmpClient(socket);
    await client.greeting();
    await client.execute('qmp_capabilities');
    return client;
  }

  private greetingWaiter?: () => void;
  private greeting(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.greetingWaiter = resolve;
      this.socket.once('close', () => reject(kvmtestError('QMP_ERROR', 'QMP closed before its greeting')));
    });
  }

  /** Runs a QMP command; resolves with its `return`, rejects with QMP_ERROR carrying QEMU's error text. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closed) return Promise.reject(kvmtestError('QMP_ERROR', `QMP is closed; cannot run ${command}`));
    const id = String(this.nextId++);
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, command });
      debug('-> %s %o', command, args ?? {});
      this.socket.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private onLine(line: string): void {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line);
    } catch {
      debug('unparsable QMP line: %s', line);
      return;
    }
    if ('QMP' in message) {
      this.greetingWaiter?.();
      return;
    }
    if ('event' in message) {
      debug('event %s', message.event);
      this.emit('event', message as unknown as QmpEvent);
      return;
    }
    const id = String(message.id);
    const pending = this.pending.get(id);
    if (!pending) return;
    this.pending.delete(id);
    if ('error' in message) {
      const error = message.error as { class?: string; desc?: string };
      pending.reject(kvmtestError('QMP_ERROR', `QMP ${pending.command} failed: ${error.desc ?? error.class}`));
    } else pending.resolve(message.return);
  }
}

/** Connects to a unix socket, retrying while it does not exist yet or refuses. */
export async function connectWithRetry(path: string, signal: AbortSignal | undefined, retryMs: number): Promise<Socket> {
  for (;;) {
    signal?.throwIfAborted();
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const socket = connect(path);
        socket.once('connect', () => {
          socket.off('error', reject);
          resolve(socket);
        });
        socket.once('error', reject);
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ECONNREFUSED') throw kvmtestError('QMP_ERROR', `cannot connect to ${path}: ${(error as Error).message}`, { cause: error });
      await new Promise((r) => setTimeout(r, retryMs));
    }
  }
}
