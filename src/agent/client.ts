import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import createDebug from 'debug';
import { type KvmtestError, kvmtestError } from '../errors.js';
import { answerError } from './answer-error.js';
import { encodeFrame, FrameDecoder } from './codec.js';
import {
  type AgentMessage,
  type AnswerTo,
  type ErrorAnswer,
  EXCHANGES,
  type FollowUp,
  type Frame,
  type HelloAnswer,
  type HostMessage,
  PROTOCOL_VERSION,
  type RequestFields,
  type RequestType,
} from './protocol.js';
import { checkAgentFrame } from './validate.js';

const debug = createDebug('kvmtest:agent');

type Handler = (frame: Frame<AgentMessage>) => void;

/** One request's view of the link: frames for its id come in, frames with its id go out. */
export interface Channel {
  readonly id: number;
  send(header: DistributiveOmit<HostMessage, 'id'>, body?: Uint8Array): Promise<void>;
  /** Stops routing frames to this channel (and ends its pause). */
  close(): void;
  /** Stops reading the link until resume(), while this channel's consumer is behind: the guest's sender stalls instead of host memory growing. */
  pause(): void;
  resume(): void;
}

type DistributiveOmit<T, K extends keyof never> = T extends unknown ? Omit<T, K> : never;

export interface ChannelHandlers {
  onFrame: Handler;
  /** The link died while this channel was open, or the agent sent it a malformed frame (AGENT_PROTOCOL). */
  onLinkError: (error: KvmtestError) => void;
}

export interface RequestOptions<T extends RequestType> {
  /** Body of the request frame (identity's entropy). */
  body?: Uint8Array;
  /** Each answer frame except `error`, in order, including the one that ends the exchange. */
  onFrame?: (frame: Frame<AnswerTo<T>>) => void;
  /** Whether this frame ends the exchange (after onFrame saw it); default: the map's final frame type. */
  until?: (frame: Frame<AnswerTo<T>>) => boolean;
  /** Closes the channel and rejects with ABORTED. */
  signal?: AbortSignal;
}

/**
 * One request in flight: awaitable for the frame that ended it. It rejects with the request's coded
 * error when the agent answers `error`, with the link's error when the link is lost, with ABORTED on
 * abort. The channel is closed whichever way it ends.
 */
export interface Exchange<T extends RequestType> extends PromiseLike<Frame<AnswerTo<T>>> {
  readonly id: number;
  readonly answer: Promise<Frame<AnswerTo<T>>>;
  /** Sends a follow-up frame on this request's id (stdin, signal, push data). */
  send(header: DistributiveOmit<FollowUp<T>, 'id'>, body?: Uint8Array): Promise<void>;
  /** Ends the exchange from the host's side: frames for it are dropped from now on, the answer rejects with `reason`. */
  close(reason?: unknown): void;
  /** See Channel.pause: holds the link while this request's consumer is behind. */
  pause(): void;
  resume(): void;
}

/** For guests: QEMU's exit or a panic reaches the host just after the socket drops, and names the cause. */
export const LINK_LOSS_GRACE_MS = 500;

/**
 * The host end of the agent link over any byte stream (the virtio-serial unix socket, or the
 * agent's stdio in tests). Multiplexes concurrent requests by id; fails every open request at
 * once when the link drops.
 */
export class AgentClient {
  private readonly decoder = new FrameDecoder<AgentMessage>();
  private readonly channels = new Map<number, ChannelHandlers>();
  private nextId = 1;
  private helloWaiter: { nonce: string; resolve: (h: HelloAnswer) => void } | undefined;
  private failure: KvmtestError | undefined;
  private readonly failureListeners = new Set<(error: KvmtestError) => void>();
  /** Open holds on the link (see hold()); it reads again when none is left. */
  private holds = 0;

  /**
   * linkLossGraceMs: a socket error or close fails open requests only after this pause, so that
   * the owner can close the link with the reason first (QEMU exited, the kernel panicked).
   */
  constructor(
    private readonly stream: Duplex,
    private readonly linkLossGraceMs = 0,
  ) {
    stream.on('data', (chunk: Buffer) => this.receive(chunk));
    stream.on('error', (error) => this.lost(kvmtestError('AGENT_DISCONNECTED', `agent link error: ${error.message}`, { cause: error })));
    stream.on('close', () => this.lost(kvmtestError('AGENT_DISCONNECTED', 'the agent link closed')));
  }

  private lost(error: KvmtestError): void {
    if (this.linkLossGraceMs <= 0) this.fail(error);
    else setTimeout(() => this.fail(error), this.linkLossGraceMs).unref();
  }

  /**
   * Sends hello and waits for the answer carrying our nonce; everything before it is skipped.
   * With repeatMs the hello is repeated until answered (an agent restarted mid-boot may have eaten it).
   */
  async handshake(options: { signal?: AbortSignal; repeatMs?: number; identity?: { hostname: string; machineId: string; entropy: Uint8Array } } = {}): Promise<HelloAnswer> {
    const nonce = randomBytes(8).toString('hex');
    let stop = () => {};
    const hello = new Promise<HelloAnswer>((resolve, reject) => {
      this.helloWaiter = { nonce, resolve };
      const unlisten = this.onFailure(reject);
      const onAbort = () => reject(options.signal!.reason);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      stop = () => {
        unlisten();
        options.signal?.removeEventListener('abort', onAbort);
      };
    });
    const { identity } = options;
    // the clock is read at each send: a repeated hello carries the time it is sent at
    const frame = (): Buffer =>
      identity
        ? encodeFrame({ t: 'hello', id: 0, nonce, identity: { hostname: identity.hostname, machineId: identity.machineId, timeMs: Date.now() } } satisfies HostMessage, identity.entropy)
        : encodeFrame({ t: 'hello', id: 0, nonce } satisfies HostMessage);
    const send = () => this.write(frame()).catch(() => {});
    void send();
    const timer = options.repeatMs ? setInterval(send, options.repeatMs) : undefined;
    let answer: HelloAnswer;
    try {
      answer = await hello;
    } finally {
      clearInterval(timer);
      stop();
    }
    if (answer.protocol !== PROTOCOL_VERSION) {
      throw kvmtestError('AGENT_PROTOCOL', `the guest agent speaks protocol ${answer.protocol}, this kvmtest speaks ${PROTOCOL_VERSION}`);
    }
    if (identity && answer.identity !== 'applied') {
      throw kvmtestError('SNAPSHOT_FAILED', `the restored guest could not take its own identity: ${answer.identityError ?? 'its agent does not know identities in hello'}`);
    }
    return answer;
  }

  /** Opens a request channel with a fresh id (request() is its one user). */
  private open(handlers: ChannelHandlers): Channel {
    if (this.failure) throw this.failure;
    const id = this.nextId++;
    this.channels.set(id, handlers);
    // a channel's pause is one hold on the link, released by resume() or close()
    let release: (() => void) | undefined;
    const resume = () => {
      release?.();
      release = undefined;
    };
    return {
      id,
      send: (header, body) => this.write(encodeFrame({ ...header, id } as HostMessage, body)),
      close: () => {
        this.channels.delete(id);
        resume();
      },
      pause: () => {
        if (this.channels.has(id) && !release) release = this.hold();
      },
      resume,
    };
  }

  /**
   * Flow control from the guest: while any hold is open the link is not read, so QEMU stops draining
   * virtio-serial and the agent's bounded outbox stalls the guest's producers. A consumer that is
   * behind (a spawn() stream nobody reads) holds until it drains. The cost is head-of-line blocking:
   * while held, no frame of any request reaches the host; frames to the guest (kill, stdin) still go.
   * Returns the release, which is safe to call twice.
   */
  hold(): () => void {
    if (this.holds++ === 0) {
      debug('holding the link: a consumer is behind');
      this.stream.pause();
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.holds === 0) {
        debug('releasing the link');
        this.stream.resume();
      }
    };
  }

  /** Round trip of one ping frame. */
  async ping(): Promise<void> {
    await this.request('ping', {});
  }

  /**
   * Opens a channel, sends request `t` with `fields`, hands each answer (typed by the request → answers
   * map) to onFrame, and settles when `until` (or the map's final frame) ends the exchange. An `error`
   * frame becomes the request's coded error. The channel is always closed: on the last frame, on an
   * error, on link loss, on abort, on close().
   */
  request<T extends RequestType>(t: T, fields: RequestFields<T>, options: RequestOptions<T> = {}): Exchange<T> {
    const { answers, ends } = EXCHANGES[t] as { answers: readonly string[]; ends: string };
    const until = options.until ?? ((frame: Frame<AnswerTo<T>>) => frame.header.t === ends);
    const { signal } = options;
    let channel: Channel | undefined;
    let settled = false;
    let settle!: { resolve: (frame: Frame<AnswerTo<T>>) => void; reject: (error: unknown) => void };
    const answer = new Promise<Frame<AnswerTo<T>>>((resolve, reject) => (settle = { resolve, reject }));
    answer.catch(() => {}); // a caller that only sends (exec's stdin) may never await it
    const onAbort = () => finish(kvmtestError('ABORTED', `the ${t} request was aborted`, { cause: signal!.reason }));
    const finish = (error: unknown, frame?: Frame<AnswerTo<T>>) => {
      if (settled) return;
      settled = true;
      channel?.close();
      signal?.removeEventListener('abort', onAbort);
      if (frame) settle.resolve(frame);
      else settle.reject(error);
    };
    if (signal?.aborted) onAbort();
    else {
      // a link that already failed throws here, as open() does
      channel = this.open({
        onFrame: (frame) => {
          if (settled) return;
          if (!answers.includes(frame.header.t)) return debug('skipping a %s frame: not an answer to %s request %d', frame.header.t, t, frame.header.id);
          const typed = frame as Frame<AnswerTo<T>>;
          if (typed.header.t === 'error') return finish(answerError(t, typed.header as ErrorAnswer));
          options.onFrame?.(typed);
          if (until(typed)) finish(undefined, typed);
        },
        onLinkError: (error) => finish(error),
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      channel.send({ t, ...fields } as DistributiveOmit<HostMessage, 'id'>, options.body).catch((error) => finish(error));
    }
    const open = () => channel !== undefined && !settled;
    return {
      id: channel?.id ?? 0,
      answer,
      then: (onfulfilled, onrejected) => answer.then(onfulfilled, onrejected),
      send: (header, body) => (channel ? channel.send(header as DistributiveOmit<HostMessage, 'id'>, body) : answer.then(() => {})),
      close: (reason) => finish(reason ?? kvmtestError('AGENT_DISCONNECTED', `the ${t} request was closed by the host`)),
      pause: () => {
        if (open()) channel!.pause();
      },
      resume: () => channel?.resume(),
    };
  }

  /** The error that ended the link, if it ended. */
  get error(): KvmtestError | undefined {
    return this.failure;
  }

  onFailure(listener: (error: KvmtestError) => void): () => void {
    if (this.failure) {
      listener(this.failure);
      return () => {};
    }
    this.failureListeners.add(listener);
    return () => this.failureListeners.delete(listener);
  }

  /** Ends the link; open requests fail with the given error. */
  close(error?: KvmtestError): void {
    this.fail(error ?? kvmtestError('AGENT_DISCONNECTED', 'the agent link was closed by the host'));
    this.stream.destroy();
  }

  private write(frame: Buffer): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      // resolve on flush, so a producer (push, stdin) is paced by the guest's reading speed
      this.stream.write(frame, (error) => (error ? void this.reasonFor(error).then(reject) : resolve()));
    });
  }

  /** The link's failure once it is known (within the grace), else the write error as a link error. */
  private reasonFor(error: Error): Promise<KvmtestError> {
    const fallback = kvmtestError('AGENT_DISCONNECTED', `agent link error: ${error.message}`, { cause: error });
    if (this.failure) return Promise.resolve(this.failure);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        stop();
        resolve(this.failure ?? fallback);
      }, this.linkLossGraceMs + 100);
      const stop = this.onFailure((failure) => {
        clearTimeout(timer);
        resolve(failure);
      });
    });
  }

  private receive(chunk: Buffer): void {
    let frames: Frame<AgentMessage>[];
    try {
      frames = this.decoder.push(chunk);
    } catch (error) {
      this.close(error as KvmtestError);
      return;
    }
    for (const frame of frames) this.dispatch(frame);
  }

  private dispatch(frame: Frame<AgentMessage>): void {
    const { header } = frame;
    // the agent is guest code: a frame whose fields are wrong fails its request (a hello, the link), never a TypeError
    const forged = checkAgentFrame(header as AgentMessage & Record<string, unknown>);
    if (forged) return this.refuse(header, forged);
    if (!this.decoder.synced) {
      if (header.t === 'hello' && header.nonce === this.helloWaiter?.nonce) {
        this.decoder.synced = true;
        this.helloWaiter.resolve(header);
        this.helloWaiter = undefined;
      } else {
        debug('skipping %s frame before hello', header.t);
      }
      return;
    }
    if (header.t === 'log') {
      debug('guest: [%s] %s', header.level, header.message);
      return;
    }
    const channel = this.channels.get(header.id);
    if (!channel) {
      debug('frame %s for closed request %d', header.t, header.id);
      return;
    }
    channel.onFrame(frame);
  }

  private refuse(header: AgentMessage, why: string): void {
    const error = kvmtestError('AGENT_PROTOCOL', `the guest agent sent a malformed ${JSON.stringify(header.t.slice(0, 40))} frame for request ${header.id}: ${why}`);
    debug('%s', error.message);
    if (header.t === 'hello' && !this.decoder.synced && (header as { nonce?: unknown }).nonce === this.helloWaiter?.nonce) return this.close(error);
    const channel = header.id === 0 || !this.decoder.synced ? undefined : this.channels.get(header.id);
    if (!channel) return; // a stray frame (no request is waiting for it) costs nothing but this line
    this.channels.delete(header.id);
    channel.onLinkError(error);
  }

  private fail(error: KvmtestError): void {
    if (this.failure) return;
    this.failure = error;
    debug('link failed: %s', error.message);
    const channels = [...this.channels.values()];
    this.channels.clear();
    for (const channel of channels) channel.onLinkError(error);
    for (const listener of this.failureListeners) listener(error);
    this.failureListeners.clear();
  }
}
