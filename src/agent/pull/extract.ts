import { createReadStream, constants as fsc } from 'node:fs';
import { type FileHandle, link, lstat, mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import createDebug from 'debug';
import * as tar from 'tar';
import { KvmtestError, kvmtestError } from '../../errors.js';
import { placeLinks } from './links.js';
import { clampMode, MAX_NAME_BYTES, memberKind, memberPath } from './names.js';

const debug = createDebug('kvmtest:pull');

/** Caps on what one pull may bring; the defaults fit any test result tree. */
export interface PullLimits {
  /** Bytes of tar stream received and of file content written, each (default 4 GiB). */
  maxBytes: number;
  /** Members, plus the directories made for them (default 100 000). */
  maxEntries: number;
}

export const DEFAULT_LIMITS: PullLimits = { maxBytes: 4 * 2 ** 30, maxEntries: 100_000 };

/** A member of the guest's archive that was not made on the host, and why. */
export interface DroppedMember {
  /** Relative to the destination. */
  path: string;
  reason: string;
}

export interface ExtractResult {
  /** At most MAX_DROPPED_LISTED of them; droppedTotal counts all. */
  dropped: DroppedMember[];
  droppedTotal: number;
  /** Tar stream bytes received, file content bytes written, entries made or dropped. */
  received: number;
  written: number;
  entries: number;
}

export const MAX_DROPPED_LISTED = 1000;

/**
 * The parser is fed this much at a time, and the next slice only once the last one's members are on
 * their way to disk: at most SLICE_BYTES / 512 members (ReadEntry objects) wait at any moment, however
 * densely a hostile guest packs its headers.
 */
export const SLICE_BYTES = 64 * 1024;

/** Writes here create, never follow or replace: a name that exists already is a duplicate member. */
const CREATE = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;
const DIR_NOFOLLOW = fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW;

/**
 * Unpacks a guest's tar stream (written to it chunk by chunk) into `root`, a fresh directory only
 * this process writes to. Member by member, every syscall chosen here:
 * - names are relative with no `..` (else UNSAFE_ARCHIVE); nothing existing is ever replaced;
 * - while members arrive the tree holds only directories and regular files (symbolic links are
 *   set aside in a spill file), so no path is ever resolved through a link;
 * - links are made at the end, then every link in the tree is resolved physically and removed
 *   when it leads outside `root` or dangles (see links.ts);
 * - modes are clamped (no setuid/setgid/sticky, no group/world write), owners never kept;
 * - bytes and entries are capped; `write()` returns false while the disk is behind.
 * In `file` mode the stream must hold exactly one regular file, written to `root` itself.
 */
export class TreeExtractor extends Writable {
  private readonly parser: tar.Parser;
  private readonly limits: PullLimits;
  private failure: Error | undefined;
  private chain: Promise<void> = Promise.resolve();
  private pending = 0;
  /** Members whose header was parsed and that are not done with: in node-tar's queue or in ours. */
  private waiting = 0;
  /** The most members that waited at once (see SLICE_BYTES). */
  peakWaiting = 0;
  /** The member whose data is being copied: destroyed on failure, so its copy stops. */
  private copying: tar.ReadEntry | undefined;
  private parserDrained = true;
  private wakers: (() => void)[] = [];
  private parseEnded = false;
  private spill: FileHandle | undefined;
  private finishing: Promise<void> | undefined;
  private files = 0;
  private readonly dropped: DroppedMember[] = [];
  private droppedTotal = 0;
  private received = 0;
  private written = 0;
  private entries = 0;

  constructor(
    private readonly root: string,
    private readonly spillPath: string,
    readonly kind: 'dir' | 'file',
    limits: Partial<PullLimits> = {},
  ) {
    super({ highWaterMark: 1024 * 1024 });
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    // gzip is still sniffed by node-tar (it cannot be turned off): the byte caps bound what it inflates
    // the filter sees each member as its header is parsed: counted there, a flood of headers is refused at the cap
    this.parser = new tar.Parser({ strict: false, zstd: false, maxMetaEntrySize: 64 * 1024, filter: () => this.meet() });
    this.parser.on('entry', (entry: tar.ReadEntry) => this.onEntry(entry));
    this.parser.on('warn', (code: string, message: string) => this.onWarn(code, message));
    this.parser.on('error', (error: Error) => this.fail(kvmtestError('UNSAFE_ARCHIVE', `the pulled archive is malformed: ${error.message}`, { cause: error })));
    this.parser.on('drain', () => {
      this.parserDrained = true;
      this.wake();
    });
    this.parser.on('end', () => {
      this.parseEnded = true;
      this.wake();
    });
  }

  /** What was made, dropped and counted (complete once the stream has finished). */
  get result(): ExtractResult {
    return { dropped: [...this.dropped], droppedTotal: this.droppedTotal, received: this.received, written: this.written, entries: this.entries };
  }

  /** Stops at once (the caller removes the directory): waits until no member is being written any more. */
  async dispose(reason?: Error): Promise<void> {
    this.fail(reason ?? new Error('pull stopped'));
    await this.chain;
    await this.finishing?.catch(() => {});
    await this.spill?.close().catch(() => {});
    this.spill = undefined;
    if (!this.destroyed) this.destroy();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.failure) return callback(this.failure);
    this.received += chunk.length;
    if (this.received > this.limits.maxBytes) {
      this.fail(kvmtestError('PULL_TOO_LARGE', `the pull brought more than ${this.limits.maxBytes} bytes (the maxBytes option)`));
      return callback(this.failure);
    }
    this.feed(chunk).then(() => callback(this.failure ?? null));
  }

  /** A chunk to the parser a slice at a time, each once the last is on its way to disk: memory holds about one slice. */
  private async feed(chunk: Buffer): Promise<void> {
    for (let at = 0; at < chunk.length && !this.failure; at += SLICE_BYTES) {
      this.parserDrained = false;
      if (this.parser.write(chunk.subarray(at, at + SLICE_BYTES))) this.parserDrained = true;
      await this.until(() => this.parserDrained && this.pending <= 1);
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.finishing = this.finish();
    this.finishing.then(
      () => callback(),
      (error: Error) => callback(this.fail(error)),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (error) this.fail(error);
    callback(error);
  }

  private async finish(): Promise<void> {
    if (this.failure) throw this.failure;
    this.parser.end();
    await this.until(() => this.parseEnded);
    await this.chain;
    if (this.failure) throw this.failure;
    if (this.kind === 'file') {
      if (this.files !== 1) throw kvmtestError('UNSAFE_ARCHIVE', 'the pull of a file brought no file member');
      return;
    }
    const spilled = this.spill !== undefined;
    await this.spill?.close();
    this.spill = undefined;
    const stopped = () => this.failure;
    await placeLinks(this.root, spilled ? this.linkRecords() : [], (path, reason) => this.drop(path, reason), stopped);
  }

  /** The symbolic links set aside, in archive order (lines this extractor wrote, one per link). */
  private async *linkRecords(): AsyncGenerator<[string, string]> {
    for await (const line of createInterface({ input: createReadStream(this.spillPath), crlfDelay: Infinity })) yield JSON.parse(line) as [string, string];
  }

  /** Records the first failure; everything still running stops at its next step. */
  private fail(error: Error): Error {
    if (!this.failure) {
      this.failure = error;
      debug('pull stopped: %s', error.message);
      this.parser.abort(error);
      this.copying?.destroy();
      this.wake();
      // the owner hears of it now ('error'), not at the end of the stream
      if (!this.destroyed) this.destroy(error);
    }
    return this.failure;
  }

  private until(condition: () => boolean): Promise<void> {
    if (this.failure || condition()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (this.failure || condition()) resolve();
        else this.wakers.push(check);
      };
      this.wakers.push(check);
    });
  }

  private wake(): void {
    const wakers = this.wakers.splice(0);
    for (const check of wakers) check();
  }

  private onWarn(code: string, message: string): void {
    // an empty directory arrives as an archive with no member, which node-tar calls unrecognized
    if (code === 'TAR_BAD_ARCHIVE' && /Unrecognized archive format/.test(message) && this.entries === 0) return;
    this.fail(kvmtestError('UNSAFE_ARCHIVE', `the pulled archive is malformed: ${code}: ${message}`));
  }

  /** A member's header was parsed: counted now, not when its turn comes; false (node-tar skips it) once the pull failed. */
  private meet(): boolean {
    if (this.failure) return false;
    try {
      this.count(1);
    } catch (error) {
      this.fail(error as Error);
      return false;
    }
    this.waiting++;
    this.peakWaiting = Math.max(this.peakWaiting, this.waiting);
    return true;
  }

  private onEntry(entry: tar.ReadEntry): void {
    if (this.failure) {
      this.waiting--;
      return void entry.resume();
    }
    this.pending++;
    this.chain = this.chain.then(async () => {
      try {
        if (!this.failure) await this.member(entry);
      } catch (error) {
        this.fail(error instanceof KvmtestError ? error : kvmtestError('HOST_IO', `cannot write the pulled ${entry.path}: ${(error as Error).message}`, { cause: error }));
      } finally {
        // whatever became of it, the parser must be able to move past its data
        if (!entry.emittedEnd) entry.resume();
        this.pending--;
        this.waiting--;
        this.wake();
      }
    });
  }

  private async member(entry: tar.ReadEntry): Promise<void> {
    const name = memberPath(entry.path);
    if (!name.ok) throw kvmtestError('UNSAFE_ARCHIVE', `refused the pulled archive: ${name.reason}`);
    const kind = memberKind(entry.type);
    const path = name.parts.join('/');
    if (this.kind === 'file') {
      if (kind !== 'file' || this.files > 0) throw kvmtestError('UNSAFE_ARCHIVE', `the pull of a file brought a ${entry.type} member ${entry.path}`);
      return this.file(entry, this.root);
    }
    if (typeof kind === 'object') return this.drop(path, kind.drop);
    if (name.parts.length === 0) return this.drop('.', `a ${entry.type} member naming the destination itself`);
    if (!(await this.parentOf(name.parts, path))) return;
    const full = join(this.root, ...name.parts);
    if (kind === 'dir') return this.dir(entry, full, path);
    if (kind === 'file') return this.file(entry, full, path);
    if (kind === 'hardlink') return this.hardLink(entry, full, path);
    return this.setAside(entry, path);
  }

  /** Makes the member's parent directories (no link exists yet, so nothing is followed); false when it cannot have one. */
  private async parentOf(parts: string[], path: string): Promise<boolean> {
    if (parts.length === 1) return true;
    const parent = join(this.root, ...parts.slice(0, -1));
    try {
      const first = await mkdir(parent, { recursive: true, mode: 0o755 });
      if (first !== undefined) this.count(parts.length - 1 - (first.slice(this.root.length + 1).split('/').length - 1));
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOTDIR' && (error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      this.drop(path, 'a parent in the archive is not a directory');
      return false;
    }
  }

  private async dir(entry: tar.ReadEntry, full: string, path: string): Promise<void> {
    const made = await mkdir(full, 0o700).then(
      () => true,
      (error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
        return false;
      },
    );
    // an existing directory (made for an earlier member) takes this member's mode; anything else is a duplicate
    const handle = await open(full, DIR_NOFOLLOW).catch((error: NodeJS.ErrnoException) => {
      if (made || !['ENOTDIR', 'ELOOP'].includes(error.code ?? '')) throw error;
      return undefined;
    });
    if (!handle) return this.drop(path, 'duplicate member: the name exists already as a file');
    try {
      await handle.chmod(clampMode(entry.mode, 'dir'));
    } finally {
      await handle.close();
    }
  }

  private async file(entry: tar.ReadEntry, full: string, path = '.'): Promise<void> {
    if (this.written + entry.size > this.limits.maxBytes) {
      throw kvmtestError('PULL_TOO_LARGE', `the pulled ${entry.path} (${entry.size} bytes) takes the pull over ${this.limits.maxBytes} bytes (the maxBytes option)`);
    }
    const handle = await open(full, CREATE, 0o600).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
      return undefined;
    });
    if (!handle) return this.drop(path, 'duplicate member: the name exists already');
    this.files++;
    try {
      await handle.chmod(clampMode(entry.mode, 'file'));
      if (entry.size > 0) await this.copy(entry, handle);
      if (entry.mtime) await handle.utimes(entry.mtime, entry.mtime);
    } finally {
      await handle.close();
    }
  }

  /** The member's data to the file, one chunk at a time; a failure destroys the entry, which ends the loop (no promise per member outlives it). */
  private async copy(entry: tar.ReadEntry, handle: FileHandle): Promise<void> {
    if (this.failure) throw this.failure;
    this.copying = entry;
    const iterator = (entry as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    try {
      // checked before each next(): a destroyed entry's next() would wait forever
      while (!this.failure) {
        const next = await iterator.next();
        if (next.done) break;
        await handle.write(next.value);
        this.written += next.value.length;
      }
    } catch (error) {
      throw this.failure ?? error;
    } finally {
      this.copying = undefined;
    }
    if (this.failure) throw this.failure;
  }

  /** Hard links only to a regular file made earlier in this pull (everything in the tree is ours, and no link exists yet). */
  private async hardLink(entry: tar.ReadEntry, full: string, path: string): Promise<void> {
    const target = memberPath(entry.linkpath ?? '');
    if (!target.ok || target.parts.length === 0) return this.drop(path, `hard link to ${entry.linkpath}: not a member of this archive`);
    const source = join(this.root, ...target.parts);
    const info = await lstat(source).catch(() => undefined);
    if (!info?.isFile()) return this.drop(path, `hard link to ${entry.linkpath}: not an earlier regular file of this archive`);
    await link(source, full).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
      this.drop(path, 'duplicate member: the name exists already');
    });
  }

  /** A symbolic link waits in the spill file until every other member is in place. */
  private async setAside(entry: tar.ReadEntry, path: string): Promise<void> {
    const target = entry.linkpath ?? '';
    if (target.startsWith('/')) return this.drop(path, `symbolic link -> ${target}: absolute link target`);
    if (target === '' || target.includes('\0') || Buffer.byteLength(target) > MAX_NAME_BYTES) return this.drop(path, 'symbolic link with an empty, NUL-bearing or over-long target');
    this.spill ??= await open(this.spillPath, CREATE, 0o600);
    await this.spill.write(`${JSON.stringify([path, target])}\n`);
  }

  private count(entries: number): void {
    this.entries += entries;
    if (this.entries > this.limits.maxEntries) {
      throw kvmtestError('PULL_TOO_MANY_ENTRIES', `the pull brought more than ${this.limits.maxEntries} entries (the maxEntries option)`);
    }
  }

  private drop(path: string, reason: string): void {
    this.droppedTotal++;
    if (this.dropped.length < MAX_DROPPED_LISTED) this.dropped.push({ path, reason });
    debug('dropped %s: %s', path, reason);
  }
}
