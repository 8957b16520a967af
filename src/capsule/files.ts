// A capsule's files: written compressed and counted, read back without following links, each checked
// against the manifest's size and digest before QEMU sees a byte of it.
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { kvmtestError } from '../errors.js';
import { attachedFileName, CAPSULE_FILES, type CapsuleFile, type CapsuleFileRole, type CapsuleManifest, damaged } from './manifest.js';

/** Fast gzip: the stream is mostly the guest's touched pages; level 1 keeps the save near the disk's speed. */
const GZIP_LEVEL = 1;

/** Bytes through a stream, refused past `limit` (`onOver` makes the error). */
class Counter extends Transform {
  bytes = 0;
  constructor(
    private readonly limit: number,
    private readonly onOver: (bytes: number) => Error,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) done(this.onOver(this.bytes));
    else done(null, chunk);
  }
}

/** A sha256 of what passes through. */
class Hasher extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }
  digest(): string {
    return this.hash.digest('hex');
  }
}

/**
 * Writes a stream gzip-compressed to a new file (0600, never through a link), refusing more than
 * `limit` bytes in (CAPSULE_FAILED). Returns the bytes in, and the file's size and digest.
 */
export async function writeCompressed(stream: Readable, path: string, limit: number): Promise<{ inBytes: number; file: CapsuleFile }> {
  const counter = new Counter(limit, (bytes) => kvmtestError('CAPSULE_FAILED', `the machine's state passed ${bytes} bytes, more than its memory allows (${limit}): refused`));
  const hasher = new Hasher();
  const handle = await open(path, NEW_FILE, 0o600);
  try {
    // the write stream owns the handle: it closes it once, whether the pipeline ends or fails
    await pipeline(stream, counter, createGzip({ level: GZIP_LEVEL }), hasher, handle.createWriteStream());
  } catch (error) {
    stream.destroy();
    throw error;
  }
  return { inBytes: counter.bytes, file: { bytes: hasher.bytes, sha256: hasher.digest() } };
}

/** open() flags for a file of a capsule that is read: no link followed, and a FIFO planted there never blocks the open. */
export const READ_NO_FOLLOW = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
/** open() flags for a new file: never an existing one, never through a link. */
const NEW_FILE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** Size and sha256 of a regular file, opened without following a link (anything else is refused). */
export async function describeFile(path: string): Promise<CapsuleFile> {
  const handle = await open(path, READ_NO_FOLLOW);
  let owned = false;
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw kvmtestError('CAPSULE_FAILED', `${path} is not a regular file`);
    const hasher = new Hasher();
    owned = true;
    // the read stream owns the handle from here
    await pipeline(handle.createReadStream({ highWaterMark: 1 << 20 }), hasher, async (source: AsyncIterable<Buffer>) => {
      for await (const _ of source);
    });
    return { bytes: hasher.bytes, sha256: hasher.digest() };
  } finally {
    if (!owned) await handle.close();
  }
}

/**
 * Checks every file the manifest lists: a regular file (no link), of the size and sha256 it records.
 * A missing, short, long or altered file is CAPSULE_DAMAGED naming it. Returns the files' paths.
 */
export async function verifyFiles(dir: string, manifest: CapsuleManifest): Promise<Partial<Record<CapsuleFileRole, string>>> {
  const paths: Partial<Record<CapsuleFileRole, string>> = {};
  for (const [role, expected] of Object.entries(manifest.files) as [CapsuleFileRole, CapsuleFile | undefined][]) {
    if (expected) paths[role] = await verifyFile(dir, CAPSULE_FILES[role], expected);
  }
  return paths;
}

/** Checks the mounted disks a capsule carries like its other files; returns them with their paths. */
export async function verifyAttached(dir: string, manifest: CapsuleManifest): Promise<{ target: number; path: string }[]> {
  const out: { target: number; path: string }[] = [];
  for (const disk of manifest.attached ?? []) out.push({ target: disk.target, path: await verifyFile(dir, attachedFileName(disk.target), disk) });
  return out;
}

/** One file of a capsule against its manifest entry; its path, or CAPSULE_DAMAGED naming it. */
async function verifyFile(dir: string, name: string, expected: CapsuleFile): Promise<string> {
  const path = join(dir, name);
  let actual: CapsuleFile;
  try {
    actual = await describeFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'is missing' : code === 'ELOOP' ? 'is a symbolic link' : code === 'CAPSULE_FAILED' ? 'is not a regular file' : `cannot be read (${code ?? (error as Error).message})`;
    throw damaged(dir, `${name} ${why}`);
  }
  if (actual.bytes !== expected.bytes) throw damaged(dir, `${name} is ${actual.bytes} bytes, the manifest says ${expected.bytes} (cut short by a copy or a download?)`);
  if (actual.sha256 !== expected.sha256) throw damaged(dir, `${name} is not the file the manifest names (its sha256 differs)`);
  return path;
}

/**
 * Copies one of a capsule's files into a private file, checking what is read against its manifest
 * entry as it goes (CAPSULE_DAMAGED). QEMU then opens the copy: a file swapped in the capsule after
 * its check is never what runs.
 */
export async function copyVerified(dir: string, from: string, to: string, expected: CapsuleFile): Promise<void> {
  const source = await open(from, READ_NO_FOLLOW).catch(() => {
    throw changed(dir, from);
  });
  const hasher = new Hasher();
  const target = await open(to, NEW_FILE, 0o600);
  // each stream owns its handle from here and closes it once
  await pipeline(source.createReadStream({ highWaterMark: 1 << 20 }), new Counter(expected.bytes, () => changed(dir, from)), hasher, target.createWriteStream());
  if (hasher.bytes !== expected.bytes || hasher.digest() !== expected.sha256) throw changed(dir, from);
}

/**
 * Decompresses a capsule's state into a new private file; it must come to exactly `bytes`, and the
 * compressed bytes read must be the ones the manifest names (else CAPSULE_DAMAGED): what is
 * unpacked is what was checked, even if the file is swapped meanwhile.
 */
export async function decompressState(dir: string, from: string, to: string, bytes: number, expected?: CapsuleFile): Promise<void> {
  const counter = new Counter(bytes, () => damaged(dir, `${CAPSULE_FILES.state} holds more than the ${bytes} bytes the manifest says`));
  const hasher = new Hasher();
  const source = await open(from, READ_NO_FOLLOW);
  const handle = await open(to, NEW_FILE, 0o600);
  try {
    await pipeline(source.createReadStream({ highWaterMark: 1 << 20 }), hasher, createGunzip(), counter, handle.createWriteStream());
  } catch (error) {
    if (error instanceof Error && 'code' in error && String((error as NodeJS.ErrnoException).code).startsWith('Z_')) throw damaged(dir, `${CAPSULE_FILES.state} is not valid gzip`);
    throw error;
  }
  if (expected && (hasher.bytes !== expected.bytes || hasher.digest() !== expected.sha256)) throw changed(dir, from);
  if (counter.bytes !== bytes) throw damaged(dir, `${CAPSULE_FILES.state} holds ${counter.bytes} bytes, the manifest says ${bytes}`);
}

function changed(dir: string, path: string): Error {
  return damaged(dir, `${basename(path)} changed while it was read (it is not the file the manifest names)`);
}
