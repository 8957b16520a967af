import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import createDebug from 'debug';
import { type ErrorCode, kvmtestError } from '../errors.js';
import { packageRoot } from '../host/paths.js';
import { type PackedCases, unpackCases } from './pack.js';
import { MAX_RESULT_FILE_BYTES, parseResults, SNIFF_BYTES, sniffResults } from './parse.js';
import type { TestCase } from './types.js';

const debug = createDebug('kvmtest:results');

/** A result file's parse may take this long (a legitimate 16 MiB file parses in a few seconds). */
export const PARSE_TIMEOUT_MS = 30_000;
/** Heap of the parsing worker: a hostile file that needs more fails to parse instead of growing the host. */
export const PARSE_HEAP_MB = 512;

export interface WorkerInput {
  bytes: Uint8Array;
  displayName: string;
}
/** The cases packed (pack.ts: each suite and file string sent once), undefined for a file that is not results. */
export type WorkerAnswer = { packed: PackedCases | undefined } | { error: { code: ErrorCode; message: string } };

/**
 * Reads and parses one collected file. Its start is sniffed first, so a large file that is not a
 * result file is skipped unread; a result file over MAX_RESULT_FILE_BYTES throws RESULT_TOO_LARGE;
 * the parse runs in a worker thread with a time limit and a heap limit (RESULT_PARSE_FAILED past
 * either), so no file can stall or bloat the host's event loop.
 */
export async function parseResultFile(path: string, displayName: string, options: { timeoutMs?: number; heapMb?: number } = {}): Promise<TestCase[] | undefined> {
  const bytes = await readResultFile(path, displayName);
  if (!bytes) return undefined;
  const entry = join(packageRoot(), 'dist', 'results', 'worker.js');
  if (!existsSync(entry)) {
    // only from an unbuilt source tree (tests of the source): parse in-process
    debug('%s is not built: parsing %s in-process', entry, displayName);
    return parseResults(bytes.toString('utf8'), displayName);
  }
  return inWorker(entry, { bytes, displayName }, options.timeoutMs ?? PARSE_TIMEOUT_MS, options.heapMb ?? PARSE_HEAP_MB);
}

/** The file's bytes if it is a result file within the size cap; undefined if it is not a result file. */
async function readResultFile(path: string, displayName: string): Promise<Buffer | undefined> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const head = Buffer.alloc(Math.min(size, SNIFF_BYTES));
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    if (!sniffResults(head.subarray(0, bytesRead).toString('utf8'))) return undefined;
    if (size > MAX_RESULT_FILE_BYTES) {
      throw kvmtestError('RESULT_TOO_LARGE', `${displayName} looks like a result file but holds ${size} bytes, over the ${MAX_RESULT_FILE_BYTES}-byte limit: not parsed`);
    }
    // at most the size seen, even if the file grew since
    const body = Buffer.alloc(size);
    const { bytesRead: read } = await handle.read(body, 0, size, 0);
    return body.subarray(0, read);
  } finally {
    await handle.close();
  }
}

function inWorker(entry: string, input: WorkerInput, timeoutMs: number, heapMb: number): Promise<TestCase[] | undefined> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(entry, { workerData: input, resourceLimits: { maxOldGenerationSizeMb: heapMb, stackSizeMb: 4 } });
    const fail = (why: string) => reject(kvmtestError('RESULT_PARSE_FAILED', `Could not parse ${input.displayName}: ${why}`));
    const timer = setTimeout(() => {
      fail(`parsing took longer than ${timeoutMs / 1000} s`);
      void worker.terminate();
    }, timeoutMs);
    worker.once('message', (answer: WorkerAnswer) => {
      if ('error' in answer) reject(kvmtestError(answer.error.code, answer.error.message));
      else resolve(answer.packed && unpackCases(answer.packed));
    });
    worker.once('error', (error: Error & { code?: string }) => {
      fail(error.code === 'ERR_WORKER_OUT_OF_MEMORY' ? `it needs more than ${heapMb} MB to parse` : error.message);
    });
    worker.once('exit', () => {
      clearTimeout(timer);
      fail('the parser stopped without an answer');
    });
  });
}
