/**
 * The agent protocol, version 1: every frame type the host and guest exchange.
 * Prose and wire layout: docs/PROTOCOL.md. The guest side is guest/agent.py.
 */
export const PROTOCOL_VERSION = 1;
export { PORT_NAME } from '../protocol/port.js';
export const MAGIC = Buffer.from('KVT1', 'latin1');
export const PRELUDE_BYTES = 12;
export const MAX_HEADER_BYTES = 64 * 1024;
export const MAX_BODY_BYTES = 1024 * 1024;
/** Chunk size for streamed data (push, stdin): well under MAX_BODY_BYTES. */
export const CHUNK_BYTES = 256 * 1024;
/**
 * Credit for stdin and push data: the host keeps at most this many bytes per request sent and not yet
 * acknowledged by a `consumed` frame, so the agent never has to stop reading the link (no head-of-line blocking).
 */
export const CREDIT_WINDOW_BYTES = 4 * 1024 * 1024;

export type SignalName = NodeJS.Signals;

// host → agent
export interface HelloRequest { t: 'hello'; id: 0; nonce: string }
export interface PingRequest { t: 'ping'; id: number }
/** Makes a restored clone its own machine; the body is host entropy for the guest's RNG. Answer: done. */
export interface IdentityRequest { t: 'identity'; id: number; hostname: string; machineId: string; timeMs: number }
export interface ExecRequest {
  t: 'exec';
  id: number;
  argv?: string[];
  shell?: string;
  env?: Record<string, string>;
  cwd?: string;
  stdin: boolean;
}
export interface StdinData { t: 'stdin'; id: number }
export interface StdinEnd { t: 'stdin-end'; id: number }
export interface SignalRequest { t: 'signal'; id: number; signal: SignalName }
export interface PushRequest { t: 'push'; id: number; dest: string; kind: TransferKind }
export interface PullRequest { t: 'pull'; id: number; path: string }
export interface DataFrame { t: 'data'; id: number }
export interface EndFrame { t: 'end'; id: number }

export type HostMessage =
  | HelloRequest | PingRequest | IdentityRequest | ExecRequest | StdinData | StdinEnd | SignalRequest
  | PushRequest | PullRequest | DataFrame | EndFrame;

// agent → host
export interface OsRelease { id: string | null; versionId: string | null; prettyName: string | null }
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
}
export interface Pong { t: 'pong'; id: number }
export interface Started { t: 'started'; id: number; pid: number }
export interface OutputFrame { t: 'stdout' | 'stderr'; id: number }
export interface Exit { t: 'exit'; id: number; code: number | null; signal: SignalName | null }
export interface Done { t: 'done'; id: number }
export interface PullStart { t: 'pull-start'; id: number; kind: TransferKind }
/** The agent consumed `bytes` of this request's stdin or push data: the host may send that much more. */
export interface Consumed { t: 'consumed'; id: number; bytes: number }
export const AGENT_ERROR_CODES = ['ENOENT', 'EACCES', 'ENOTDIR', 'EISDIR', 'ENOSPC', 'EINVAL', 'EBADTAR', 'EIO'] as const;
export type AgentErrorCode = (typeof AGENT_ERROR_CODES)[number];
export interface ErrorAnswer { t: 'error'; id: number; code: AgentErrorCode; message: string }
export interface LogEvent { t: 'log'; id: 0; level: string; message: string }

export type AgentMessage =
  | HelloAnswer | Pong | Started | OutputFrame | Exit | Done | PullStart | DataFrame | EndFrame
  | ErrorAnswer | LogEvent | Consumed;

export type TransferKind = 'file' | 'dir';

/** A decoded frame: the JSON header plus its (possibly empty) body. */
export interface Frame<M> {
  header: M;
  body: Buffer;
}
