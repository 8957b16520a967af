import { createConnection, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import createDebug from 'debug';
import { ERROR_CODES, type ErrorCode, kvmtestError } from '../errors.js';
import { adoptGuest, type LentMachine } from '../guest/adopt.js';
import type { Guest } from '../guest/guest.js';
import type { BootOptions } from '../guest/options.js';
import { type FromOwner, parseFromOwner, sharedOptions, type ToOwner } from './protocol.js';
import { RemoteQemu } from './remote-qemu.js';

const debug = createDebug('kvmtest:pool');

/** What a test fixture takes fresh guests from: a GuestPool of this process, or a shared one. */
export interface GuestSource {
  take(): Promise<Guest>;
  dispose(): Promise<void>;
}

/**
 * The worker's end of a shared pool (owner.ts): take() asks the owner for a guest made with
 * `options` and adopts it (this process's own QMP and agent links; QEMU stays the owner's). Disposing
 * a guest quits it as usual; dispose() hangs up, and the owner stops whatever this end still had.
 */
export class SharedGuestPool implements GuestSource, AsyncDisposable {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (lent: LentMachine) => void; reject: (error: Error) => void }>();
  private readonly remotes = new Map<string, RemoteQemu>();
  private closed = false;

  private constructor(
    private readonly socket: Socket,
    private readonly options: BootOptions,
  ) {
    createInterface({ input: socket }).on('line', (line) => {
      const message = parseFromOwner(line);
      if (message) this.onMessage(message);
      else debug('ignored a malformed line from the pool owner');
    });
    socket.on('error', () => {});
    socket.on('close', () => this.onHangUp());
  }

  /** Connects to the owner listening on `socketPath`; every take() asks for a guest made with `options`. */
  static connect(socketPath: string, options: BootOptions): Promise<SharedGuestPool> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(socketPath);
      socket.once('connect', () => resolve(new SharedGuestPool(socket, options)));
      socket.once('error', (error) => reject(kvmtestError('INVALID_OPTION', `no shared guest pool answers at ${socketPath}: ${error.message}`, { cause: error })));
    });
  }

  async take(): Promise<Guest> {
    if (this.closed) throw kvmtestError('GUEST_DISPOSED', 'the shared guest pool was disposed, or its owner went away');
    const id = this.nextId++;
    const leased = new Promise<LentMachine>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.send({ t: 'take', id, options: sharedOptions(this.options) });
    const lent = await leased;
    const name = lent.info.name;
    const qemu = new RemoteQemu(lent.pid, lent.info.consolePath, (signal) => this.send({ t: 'kill', name, signal }));
    this.remotes.set(name, qemu);
    void qemu.exited.then(() => this.remotes.delete(name));
    try {
      return await adoptGuest(this.options, lent, qemu);
    } catch (error) {
      this.send({ t: 'return', name });
      throw error;
    }
  }

  /** Hangs up: the owner stops every guest this end still has. */
  async dispose(): Promise<void> {
    if (this.socket.destroyed) return;
    const hungUp = new Promise((r) => this.socket.once('close', r));
    this.socket.end();
    await hungUp;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  private send(message: ToOwner): void {
    if (!this.socket.destroyed) this.socket.write(`${JSON.stringify(message)}\n`);
  }

  private onMessage(message: FromOwner): void {
    if (message.t === 'lease' || message.t === 'error') {
      const waiter = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (!waiter) return;
      if (message.t === 'lease') waiter.resolve(message.lent);
      else waiter.reject(kvmtestError(ERROR_CODES.includes(message.code as ErrorCode) ? (message.code as ErrorCode) : 'INTERNAL', message.message));
    } else if (message.t === 'exited') this.remotes.get(message.name)?.exitedWith(message.exit);
    else this.remotes.get(message.name)?.panicked(message.line);
  }

  private onHangUp(): void {
    this.closed = true;
    const gone = 'the shared guest pool owner went away';
    for (const waiter of this.pending.values()) waiter.reject(kvmtestError('GUEST_DISPOSED', gone));
    this.pending.clear();
    // the owner stops what it lent when a connection closes: these QEMUs are gone or going
    for (const qemu of this.remotes.values()) qemu.exitedWith({ code: null, signal: 'SIGKILL', stderr: gone });
    this.remotes.clear();
  }
}
