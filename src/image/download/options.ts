// Checking options and turning them into the policy (retries, timeouts) and job (paths, digest) the rest works from.
import type { Dispatcher } from 'undici';
import { kvmtestError } from '../../errors.js';
import { describe } from '../../util/units.js';
import { HEX_LENGTH } from '../checksums.js';
import { defaultDispatcher } from './dispatcher.js';
import type { Digest, DownloadOptions } from './types.js';

export interface RetryPolicy {
  url: string;
  retries: number;
  backoffMs: number;
  idleTimeoutMs: number;
  signal: AbortSignal | undefined;
  dispatcher: Dispatcher;
}

export interface DownloadJob extends RetryPolicy {
  dest: string;
  partial: string;
  sidecar: string;
  algorithm: Digest['algorithm'];
  expected: Digest | undefined;
}

export function downloadJob(options: DownloadOptions): DownloadJob {
  if (typeof options !== 'object' || options === null) invalid('options', 'an object such as { url, dest }', options);
  if (typeof options.dest !== 'string' || options.dest === '') invalid('dest', 'a non-empty path', options.dest);
  if (options.partial !== undefined && (typeof options.partial !== 'string' || options.partial === '')) {
    invalid('partial', 'a non-empty path', options.partial);
  }
  const expected = options.expected;
  if (expected !== undefined) {
    if (typeof expected !== 'object' || expected === null) invalid('expected', 'a digest such as { algorithm: "sha256", hex }', expected);
    const length = (HEX_LENGTH as Record<string, number | undefined>)[expected.algorithm];
    if (length === undefined) invalid('expected.algorithm', '"sha256" or "sha512"', expected.algorithm);
    if (typeof expected.hex !== 'string' || expected.hex.length !== length || !/^[0-9a-f]+$/i.test(expected.hex)) {
      invalid('expected.hex', `${length} hexadecimal digits`, expected.hex);
    }
  }
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') invalid('onProgress', 'a function', options.onProgress);
  const partial = options.partial ?? `${options.dest}.partial`;
  return {
    ...policyFrom(options),
    dispatcher: options.dispatcher ?? defaultDispatcher(),
    dest: options.dest,
    partial,
    sidecar: `${partial}.json`,
    algorithm: expected?.algorithm ?? 'sha256',
    expected,
  };
}

export function policyFrom(options: { url: string; retries?: number; backoffMs?: number; idleTimeoutMs?: number; signal?: AbortSignal }): Omit<RetryPolicy, 'dispatcher'> {
  let protocol: string | undefined;
  try {
    protocol = new URL(options.url).protocol;
  } catch {
    // reported below
  }
  if (protocol !== 'http:' && protocol !== 'https:') invalid('url', 'an http(s) URL', options.url);
  const retries = options.retries ?? 4;
  const backoffMs = options.backoffMs ?? 500;
  const idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
  checkInteger('retries', retries, 0);
  checkInteger('backoffMs', backoffMs, 0);
  checkInteger('idleTimeoutMs', idleTimeoutMs, 1);
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) invalid('signal', 'an AbortSignal', options.signal);
  return { url: options.url, retries, backoffMs, idleTimeoutMs, signal: options.signal };
}

export function checkInteger(name: string, value: unknown, min: number): void {
  if (!Number.isSafeInteger(value) || (value as number) < min) {
    invalid(name, min === 0 ? 'a non-negative integer' : `an integer of at least ${min}`, value);
  }
}

/** Every refused download option: INVALID_OPTION naming the option's path, what was expected and what came. */
function invalid(name: string, expected: string, value: unknown): never {
  throw kvmtestError('INVALID_OPTION', `Expected the "${name}" option to be ${expected}, got ${describe(value)}`);
}
