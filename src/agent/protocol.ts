/**
 * The agent protocol, version 1: every frame type the host and guest exchange, and which answers
 * which request. Prose and wire layout: docs/PROTOCOL.md. The guest side is guest/agent.py; the
 * values both sides hold live in shared.ts.
 */
import { type AGENT_ERROR_CODES, type HOST_FRAME_TYPES, MAGIC_TEXT } from '../protocol/shared.js';

export {
  AGENT_ERROR_CODES,
  CHUNK_BYTES,
  CREDIT_WINDOW_BYTES,
  DEFAULT_PATH,
  MAX_BODY_BYTES,
  MAX_HEADER_BYTES,
  PORT_NAME,
  PRELUDE_BYTES,
  PROTOCOL_VERSION,
} from '../protocol/shared.js';
export const MAGIC = Buffer.from(MAGIC_TEXT, 'latin1');

export type SignalName = NodeJS.Signals;

// host → agent
export interface HelloRequest {
  t: 'hello';
  id: 0;
  nonce: string;
  /** A restored clone's own identity (the frame's body is host entropy): applied before the answer, once per machineId. */
  identity?: IdentityFields;
}
/** What makes a clone its own machine: hostname, machine-id (32 hex), the host's clock. */
export interface IdentityFields {
  hostname: string;
  machineId: string;
  timeMs: number;
}
export interface PingRequest {
  t: 'ping';
  id: number;
}
/** Makes a restored clone its own machine; the body is host entropy for the guest's RNG. Answer: done. */
export interface IdentityRequest {
  t: 'identity';
  id: number;
  hostname: string;
  machineId: string;
  timeMs: number;
}
export interface ExecRequest {
  t: 'exec';
  id: number;
  argv?: string[];
  shell?: string;
  env?: Record<string, string>;
  cwd?: string;
  stdin: boolean;
  /** Run on a terminal (a pty) of this size: stdout carries everything it shows, stderr is not used. */
  tty?: TerminalSize;
}
export interface TerminalSize {
  rows: number;
  cols: number;
}
/** A terminal's new size (the kernel tells its foreground process group with SIGWINCH). */
export interface ResizeRequest {
  t: 'resize';
  id: number;
  rows: number;
  cols: number;
}
export interface StdinData {
  t: 'stdin';
  id: number;
}
export interface StdinEnd {
  t: 'stdin-end';
  id: number;
}
export interface SignalRequest {
  t: 'signal';
  id: number;
  signal: SignalName;
}
export interface PushRequest {
  t: 'push';
  id: number;
  dest: string;
  kind: TransferKind;
}
/**
 * A bulk push through a disk the host attached (virtio-scsi target `target`): `dir`, a read-only ext2
 * image of the tree, mounted and copied into dest; `file`, the file itself, of which `bytes` are copied.
 */
export interface CopyInRequest {
  t: 'copy-in';
  id: number;
  target: number;
  kind: TransferKind;
  dest: string;
  bytes?: number;
  mode?: number;
  /** `dir` only: mount the image read-only at dest and leave it (a view), instead of copying. */
  view?: boolean;
  /** With `view`: an overlay at dest, the image beneath and the guest's writes on its own disk. */
  writable?: boolean;
}
export interface PullRequest {
  t: 'pull';
  id: number;
  path: string;
  /** The host's caps (it enforces them too: the agent may be replaced): an honest agent stops at them with ETOOMANY / ETOOBIG. */
  maxEntries?: number;
  maxBytes?: number;
}
export interface DataFrame {
  t: 'data';
  id: number;
}
/** End of a push's tar stream (host → agent), of a pull's (agent → host); on a pull or copy-in id from the host: it gave up, stop. */
export interface EndFrame {
  t: 'end';
  id: number;
}

export type HostMessage =
  | HelloRequest
  | PingRequest
  | IdentityRequest
  | ExecRequest
  | StdinData
  | StdinEnd
  | SignalRequest
  | ResizeRequest
  | PushRequest
  | CopyInRequest
  | PullRequest
  | DataFrame
  | EndFrame;
// the host's frame types are exactly the list the agent serves (shared.ts): a type error otherwise
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
export type HostFrameTypesMatch = Assert<Same<HostMessage['t'], (typeof HOST_FRAME_TYPES)[number]>>;

// agent → host
export interface OsRelease {
  id: string | null;
  versionId: string | null;
  prettyName: string | null;
}
export interface HelloAnswer {
  t: 'hello';
  id: 0;
  nonce: string;
  protocol: number;
  version: string;
  os: OsRelease;
  kernel: string;
  arch: string;
  hostname: string;
  pid: number;
  /** Present when the hello carried an identity: it was applied, or why not. */
  identity?: 'applied';
  identityError?: string;
}
export interface Pong {
  t: 'pong';
  id: number;
}
export interface Started {
  t: 'started';
  id: number;
  pid: number;
}
export interface OutputFrame {
  t: 'stdout' | 'stderr';
  id: number;
}
export interface Exit {
  t: 'exit';
  id: number;
  code: number | null;
  signal: SignalName | null;
}
export interface Done {
  t: 'done';
  id: number;
}
export interface PullStart {
  t: 'pull-start';
  id: number;
  kind: TransferKind;
}
/** The agent consumed `bytes` of this request's stdin or push data: the host may send that much more. */
export interface Consumed {
  t: 'consumed';
  id: number;
  bytes: number;
}
export type AgentErrorCode = (typeof AGENT_ERROR_CODES)[number];
export interface ErrorAnswer {
  t: 'error';
  id: number;
  code: AgentErrorCode;
  message: string;
}
export interface LogEvent {
  t: 'log';
  id: 0;
  level: string;
  message: string;
}

export type AgentMessage = HelloAnswer | Pong | Started | OutputFrame | Exit | Done | PullStart | DataFrame | EndFrame | ErrorAnswer | LogEvent | Consumed;

export type TransferKind = 'file' | 'dir';

/**
 * The request → answers map: for each request the host opens on a fresh id, the frames the agent may
 * answer on that id, the frames the host may send after it on that id, and the frame that ends the
 * exchange (an `error` frame ends any exchange). AgentClient.request() is typed by it.
 * hello is not here: it is the link's own exchange (id 0, repeated until an answer carries its nonce).
 */
export interface Exchanges {
  ping: { request: PingRequest; answers: Pong | ErrorAnswer; follow: never; ends: 'pong' };
  identity: { request: IdentityRequest; answers: Done | ErrorAnswer; follow: never; ends: 'done' };
  exec: { request: ExecRequest; answers: Started | OutputFrame | Consumed | Exit | ErrorAnswer; follow: StdinData | StdinEnd | SignalRequest | ResizeRequest; ends: 'exit' };
  push: { request: PushRequest; answers: Consumed | Done | ErrorAnswer; follow: DataFrame | EndFrame; ends: 'done' };
  pull: { request: PullRequest; answers: PullStart | DataFrame | EndFrame | ErrorAnswer; follow: EndFrame; ends: 'end' };
  'copy-in': { request: CopyInRequest; answers: Done | ErrorAnswer; follow: EndFrame; ends: 'done' };
}
export type RequestType = keyof Exchanges;
/** The request's own fields (the client adds `t` and `id`). */
export type RequestFields<T extends RequestType> = Omit<Exchanges[T]['request'], 't' | 'id'>;
/** A frame the agent may send on a request's id. */
export type AnswerTo<T extends RequestType> = Exchanges[T]['answers'];
/** The frame that ends a request's exchange when nothing else decides (see RequestOptions.until). */
export type FinalAnswer<T extends RequestType> = Extract<AnswerTo<T>, { t: Exchanges[T]['ends'] }>;
/** A frame the host may send on a request's id after the request. */
export type FollowUp<T extends RequestType> = Exchanges[T]['follow'];

/** The map at run time: frames of other types on a request's id are not delivered to it. */
export const EXCHANGES: { readonly [T in RequestType]: { readonly answers: readonly AnswerTo<T>['t'][]; readonly ends: Exchanges[T]['ends'] } } = {
  ping: { answers: ['pong', 'error'], ends: 'pong' },
  identity: { answers: ['done', 'error'], ends: 'done' },
  exec: { answers: ['started', 'stdout', 'stderr', 'consumed', 'exit', 'error'], ends: 'exit' },
  push: { answers: ['consumed', 'done', 'error'], ends: 'done' },
  pull: { answers: ['pull-start', 'data', 'end', 'error'], ends: 'end' },
  'copy-in': { answers: ['done', 'error'], ends: 'done' },
};

/** A decoded frame: the JSON header plus its (possibly empty) body. */
export interface Frame<M> {
  header: M;
  body: Buffer;
}
