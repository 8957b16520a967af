// Hashing files on disk: a whole file, or the prefix a partial download already holds.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Digest } from './types.js';

/** Hex digest of a whole file, streamed in 1 MiB reads (base images are GBs). The one file hasher: snapshot/digest.ts memoises it. */
export async function hashFile(path: string, algorithm: Digest['algorithm']): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export async function hashPrefix(path: string, bytes: number, algorithm: Digest['algorithm'], signal: AbortSignal | undefined): Promise<Hash> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(path, { end: bytes - 1, ...(signal ? { signal } : {}) })) {
    hash.update(chunk as Buffer);
  }
  return hash;
}
