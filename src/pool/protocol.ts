import type { LentMachine } from '../guest/adopt.js';
import type { BootOptions } from '../guest/options.js';
import type { QemuExit } from '../qemu/process.js';
import { canonical } from '../snapshot/key.js';

/**
 * The shared pool's JSON lines over a unix socket: a worker process asks the owner for a guest
 * (`take`), gets it lent (`lease`: QEMU stays the owner's child, the worker connects its own QMP and
 * agent links) and hears of its QEMU's end from the owner (`exited`, `panic`). A closed connection
 * returns every guest lent on it: the owner stops them.
 */
export type ToOwner = { t: 'take'; id: number; options: SharedBootOptions } | { t: 'kill'; name: string; signal: NodeJS.Signals } | { t: 'return'; name: string };

export type FromOwner =
  | { t: 'lease'; id: number; lent: LentMachine }
  | { t: 'error'; id: number; code: string; message: string }
  | { t: 'exited'; name: string; exit: QemuExit }
  | { t: 'panic'; name: string; line: string };

/** Boot options that cross a process boundary: data only (no signal, no progress). */
export type SharedBootOptions = Omit<BootOptions, 'signal' | 'progress'>;

/** The options as the owner keys its pools: the same starting point is the same key, whatever the order of fields. */
export function poolKey(options: SharedBootOptions): string {
  return canonical(options);
}

/** Strips what cannot cross: a signal stays with the caller, progress lines are the owner's to not print. */
export function sharedOptions(options: BootOptions): SharedBootOptions {
  const { signal: _, progress: __, ...rest } = options;
  return rest;
}

const SIGNALS = new Set(['SIGKILL', 'SIGTERM', 'SIGINT']);

/** One line from a worker, or undefined for anything malformed. */
export function parseToOwner(line: string): ToOwner | undefined {
  const m = parseObject(line);
  if (m?.t === 'take' && Number.isInteger(m.id) && m.options && typeof m.options === 'object' && typeof (m.options as { image?: unknown }).image === 'string') return m as ToOwner;
  if (m?.t === 'kill' && typeof m.name === 'string' && SIGNALS.has(m.signal as string)) return m as ToOwner;
  if (m?.t === 'return' && typeof m.name === 'string') return m as ToOwner;
  return undefined;
}

/** One line from the owner, or undefined for anything malformed. */
export function parseFromOwner(line: string): FromOwner | undefined {
  const m = parseObject(line);
  if (m?.t === 'lease' && Number.isInteger(m.id) && m.lent && typeof m.lent === 'object') return m as FromOwner;
  if (m?.t === 'error' && Number.isInteger(m.id) && typeof m.code === 'string' && typeof m.message === 'string') return m as FromOwner;
  if (m?.t === 'exited' && typeof m.name === 'string' && m.exit && typeof m.exit === 'object') return m as FromOwner;
  if (m?.t === 'panic' && typeof m.name === 'string' && typeof m.line === 'string') return m as FromOwner;
  return undefined;
}

function parseObject(line: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
