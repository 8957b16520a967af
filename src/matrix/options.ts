import { kvmtestError } from '../errors.js';
import { describe, parseDuration } from '../util/units.js';
import { parseShard, type Shard } from './shard.js';
import type { MatrixOptions } from './types.js';

export const DEFAULT_CELL_TIMEOUT_MS = 30 * 60_000;

export interface ResolvedMatrixOptions {
  run: string[] | string;
  node: 'host' | 'guest';
  concurrency: 'auto' | number;
  timeoutMs: number;
  retries: number;
  failFast: boolean;
  shard: Shard;
}

const fail = (message: string): never => {
  throw kvmtestError('CONFIG_INVALID', message);
};

/** Checks what expandMatrix does not: the run, copies, and scheduling options. Pure. */
export function resolveMatrixOptions(options: MatrixOptions): ResolvedMatrixOptions {
  if (typeof options !== 'object' || options === null) fail(`Expected matrix options to be an object, got ${describe(options)}`);
  const { run } = options;
  const runOk = (typeof run === 'string' && run.trim().length > 0) || (Array.isArray(run) && run.length > 0 && run.every((a) => typeof a === 'string'));
  if (!runOk) fail(`Expected "run" to be a command: an array of strings or a shell string, got ${describe(run)}`);
  for (const field of ['push', 'env'] as const) {
    const value = options[field];
    if (value !== undefined && (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.values(value).every((v) => typeof v === 'string'))) {
      fail(`Expected "${field}" to be an object of strings (${field === 'push' ? 'host path → guest path' : 'name → value'}), got ${describe(value)}`);
    }
  }
  for (const dest of Object.values(options.push ?? {})) if (!dest.startsWith('/')) fail(`Expected "push" destinations to be absolute guest paths, got ${JSON.stringify(dest)}`);
  if (options.collect !== undefined && (!Array.isArray(options.collect) || !options.collect.every((p) => typeof p === 'string' && p.startsWith('/')))) {
    fail(`Expected "collect" to be an array of absolute guest paths, got ${describe(options.collect)}`);
  }
  const node = options.node ?? 'guest';
  if (node !== 'host' && node !== 'guest') fail(`Expected "node" to be 'host' or 'guest', got ${describe(node)}`);
  const concurrency = options.concurrency ?? 'auto';
  if (concurrency !== 'auto' && !(Number.isInteger(concurrency) && concurrency >= 1)) fail(`Expected "concurrency" to be 'auto' or a whole number ≥ 1, got ${describe(concurrency)}`);
  const retries = options.retries ?? 0;
  if (!Number.isInteger(retries) || retries < 0 || retries > 10) fail(`Expected "retries" to be a whole number from 0 to 10, got ${describe(retries)}`);
  if (options.failFast !== undefined && typeof options.failFast !== 'boolean') fail(`Expected "failFast" to be a boolean, got ${describe(options.failFast)}`);
  const timeoutMs = options.timeout === undefined ? DEFAULT_CELL_TIMEOUT_MS : parseDuration(options.timeout, 'timeout');
  if (timeoutMs <= 0) fail(`Expected "timeout" to be a positive duration, got ${describe(options.timeout)}`);
  return { run, node, concurrency, timeoutMs, retries, failFast: options.failFast ?? false, shard: parseShard(options.shard ?? '1/1') };
}
