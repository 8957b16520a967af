import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheFileExists, cachePath, refusedInCache } from '../image/cache.js';
import { hashFile } from '../image/download/hash.js';
import { replaceFile } from '../util/no-follow.js';

/**
 * sha256 of a file's content, remembered by (device, inode, size, mtime, ctime) so a multi-GB base
 * image is read once, not on every boot. ctime because anyone can put mtime back with utimes() after a
 * same-size rewrite; nobody but the kernel sets ctime (nanoseconds, where the filesystem keeps them).
 */
export async function fileDigest(path: string): Promise<string> {
  const info = await stat(path, { bigint: true });
  const stamp = createHash('sha256').update(`${path}\0${info.dev}\0${info.ino}\0${info.size}\0${info.mtimeNs}\0${info.ctimeNs}`).digest('hex').slice(0, 32);
  const memo = join(await cachePath('digests'), stamp);
  const known = (await cacheFileExists(memo)) ? await readFile(memo, 'utf8').catch(() => undefined) : undefined;
  if (known && /^[0-9a-f]{64}$/.test(known)) return known;
  const digest = await hashFile(path, 'sha256');
  await replaceFile(memo, digest, refusedInCache);
  return digest;
}
