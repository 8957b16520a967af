import { constants } from 'node:os';
import { AGENT_ERROR_CODES } from './protocol.js';

/**
 * Checks the fields of a frame from the agent before anything reads them: the agent runs in the
 * guest, and the guest may replace it. Pure: returns why the frame is refused, or undefined.
 * Types the host does not know pass (no handler reads them); the decoder already checked `t` and `id`.
 */
export function checkAgentFrame(header: { t: string; id: number } & Record<string, unknown>): string | undefined {
  const check = CHECKS[header.t];
  return check?.(header);
}

/** Longest hello strings: hostnames are at most 255 bytes (64 on Linux), the rest is a short name. */
export const HELLO_LIMITS = { nonce: 64, version: 64, kernel: 256, arch: 64, hostname: 255, os: 256 } as const;
/** Longest error and log messages (the agent cuts its own at 4000 characters). */
export const MAX_MESSAGE_CHARS = 8192;
const MAX_PID = 2 ** 31 - 1;

type Fields = Record<string, unknown>;
type Check = (f: Fields) => string | undefined;

const CHECKS: Record<string, Check> = {
  hello: (f) =>
    text(f, 'nonce', HELLO_LIMITS.nonce) ??
    integer(f, 'protocol', 0, MAX_PID) ??
    text(f, 'version', HELLO_LIMITS.version) ??
    text(f, 'kernel', HELLO_LIMITS.kernel) ??
    text(f, 'arch', HELLO_LIMITS.arch) ??
    text(f, 'hostname', HELLO_LIMITS.hostname) ??
    integer(f, 'pid', 1, MAX_PID) ??
    osRelease(f.os) ??
    (f.identity === undefined || f.identity === 'applied' ? undefined : `"identity" is not "applied": ${show(f.identity)}`) ??
    (f.identityError === undefined ? undefined : text(f, 'identityError', MAX_MESSAGE_CHARS)),
  started: (f) => integer(f, 'pid', 1, MAX_PID),
  exit: (f) => {
    if (f.code !== null) return integer(f, 'code', 0, 255);
    if (f.signal === null) return '"code" and "signal" are both null';
    return typeof f.signal === 'string' && isSignalName(f.signal) ? undefined : `"signal" is not a known signal name: ${show(f.signal)}`;
  },
  'pull-start': (f) => (f.kind === 'file' || f.kind === 'dir' ? undefined : `"kind" is not file or dir: ${show(f.kind)}`),
  consumed: (f) => integer(f, 'bytes', 1, Number.MAX_SAFE_INTEGER),
  error: (f) => ((AGENT_ERROR_CODES as readonly unknown[]).includes(f.code) ? undefined : `"code" is not an agent error code: ${show(f.code)}`) ?? text(f, 'message', MAX_MESSAGE_CHARS),
  log: (f) => text(f, 'level', 16) ?? text(f, 'message', MAX_MESSAGE_CHARS),
};

/** Signal names Node knows, plus the agent's names for real-time signals (SIGRTMIN, SIG35, …). */
export function isSignalName(name: string): boolean {
  return Object.hasOwn(constants.signals, name) || /^SIG(RTMIN|RTMAX|[1-9]|[1-5][0-9]|6[0-4])$/.test(name);
}

function text(f: Fields, key: string, max: number): string | undefined {
  const value = f[key];
  if (typeof value !== 'string') return `"${key}" is not a string: ${show(value)}`;
  if (value.length > max) return `"${key}" is ${value.length} characters long (at most ${max})`;
  return undefined;
}

function integer(f: Fields, key: string, min: number, max: number): string | undefined {
  const value = f[key];
  if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return undefined;
  return `"${key}" is not an integer in ${min}..${max}: ${show(value)}`;
}

function osRelease(os: unknown): string | undefined {
  if (typeof os !== 'object' || os === null || Array.isArray(os)) return `"os" is not an object: ${show(os)}`;
  for (const key of ['id', 'versionId', 'prettyName']) {
    const value = (os as Fields)[key];
    if (value === null) continue;
    const problem = text(os as Fields, key, HELLO_LIMITS.os);
    if (problem) return `os: ${problem}`;
  }
  return undefined;
}

/** A short rendering of a refused value for the error message (never the whole of a huge string). */
function show(value: unknown): string {
  const rendered =
    typeof value === 'string'
      ? JSON.stringify(value.slice(0, 40)) + (value.length > 40 ? '…' : '')
      : typeof value === 'object' && value !== null
        ? Array.isArray(value)
          ? 'an array'
          : 'an object'
        : String(value);
  return `${rendered} (${value === null ? 'null' : typeof value})`;
}
