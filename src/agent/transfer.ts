import { constants as fsc } from 'node:fs';
import { chmod, mkdir, open, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, normalize, resolve, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import * as tar from 'tar';
import { GuestCommandError, InputError, KvmtestError } from '../errors.js';
import type { AgentClient, Channel } from './client.js';
import { CreditWindow } from './credit.js';
import { CHUNK_BYTES, type AgentMessage, type ErrorAnswer, type Frame, type TransferKind } from './protocol.js';

/** 1024 zero bytes: a tar archive with no members (node-tar refuses to create one). */
const EMPTY_TAR = Buffer.alloc(1024);

/** Copies a host file or directory to `dest` in the guest as a tar stream; modes are kept. */
export async function push(client: AgentClient, source: string, dest: string): Promise<void> {
  assertGuestPath(dest, 'push destination');
  const info = await stat(source).catch((error: NodeJS.ErrnoException) => {
    throw new InputError('LOCAL_PATH_NOT_FOUND', `cannot push ${source}: ${error.code === 'ENOENT' ? 'no such file or directory on the host' : error.message}`, { cause: error });
  });
  const kind: TransferKind = info.isDirectory() ? 'dir' : 'file';
  if (kind === 'file' && !info.isFile()) throw new InputError('INVALID_OPTION', `cannot push ${source}: only regular files and directories can be pushed`);
  const [cwd, entries] = kind === 'dir' ? [source, await readdir(source)] : [dirname(source), [basename(source)]];

  const credit = new CreditWindow(); // paced by the agent's `consumed` frames
  const { channel, answer } = request(client, 'done', (frame) => frame.header.t === 'consumed' && credit.grant(frame.header.bytes));
  // the guest may refuse early (disk full, unsafe member): stop sending at once
  let refused: unknown;
  answer.catch((error) => {
    refused = error;
    credit.close();
  });
  const send = async (chunk: Buffer) => {
    await credit.take(chunk.length);
    if (refused) throw refused;
    await channel.send({ t: 'data' }, chunk);
  };
  try {
    await channel.send({ t: 'push', dest, kind });
    if (entries.length === 0) await send(EMPTY_TAR);
    else {
      const archive = tar.create({ cwd, portable: true }, entries);
      for await (const chunk of archive as AsyncIterable<Buffer>) {
        for (let at = 0; at < chunk.length; at += CHUNK_BYTES) await send(chunk.subarray(at, at + CHUNK_BYTES));
      }
    }
    await channel.send({ t: 'end' });
    await answer;
  } catch (error) {
    channel.close();
    throw error;
  }
}

/**
 * Copies a guest file or directory to the host. A file lands at `dest` (or inside it, when `dest`
 * is an existing directory); a directory's contents land under `dest`. Members that would escape
 * `dest` (absolute names, `..`, links pointing outside) fail the pull with UNSAFE_ARCHIVE.
 */
export async function pull(client: AgentClient, source: string, dest: string): Promise<void> {
  assertGuestPath(source, 'pull source');
  let sink: Sink | undefined;
  const { channel, answer } = request(client, 'end', (frame) => {
    if (frame.header.t === 'pull-start') sink = frame.header.kind === 'dir' ? dirSink(dest) : fileSink(dest, source);
    else if (frame.header.t === 'data') sink?.write(frame.body);
  });
  try {
    await channel.send({ t: 'pull', path: source });
    await answer;
  } catch (error) {
    channel.close();
    await sink?.abort();
    throw error;
  }
  if (!sink) throw new GuestCommandError('GUEST_IO', `the guest agent ended the pull of ${source} without data`);
  await sink.finish();
}

interface Sink {
  write(chunk: Buffer): void;
  finish(): Promise<void>;
  abort(): Promise<void>;
}

function dirSink(dest: string): Sink {
  const root = resolve(dest);
  let unsafe: string | undefined;
  let unpack: tar.Unpack | undefined;
  const ready = mkdir(root, { recursive: true }).then(() => {
    unpack = new tar.Unpack({
      cwd: root,
      strict: true,
      preserveOwner: false,
      filter: (path, entry) => {
        const reason = escapes(root, path, 'linkpath' in entry ? entry.linkpath : undefined, 'type' in entry ? entry.type : undefined);
        if (reason) unsafe ??= reason;
        return !reason;
      },
    });
    return unpack;
  });
  const pending: Buffer[] = [];
  const done = ready.then(
    (u) =>
      new Promise<void>((resolveDone, reject) => {
        u.on('error', reject);
        u.on('finish', () => resolveDone());
        for (const chunk of pending.splice(0)) u.write(chunk);
      }),
  );
  done.catch(() => {});
  return {
    write: (chunk) => (unpack ? unpack.write(chunk) : pending.push(chunk)),
    finish: async () => {
      (await ready).end();
      await done.catch((error) => {
        throw new KvmtestError('HOST_IO', `cannot unpack the pulled directory into ${dest}: ${error.message}`, { cause: error });
      });
      if (unsafe) throw new GuestCommandError('UNSAFE_ARCHIVE', `refused a member of the pulled archive: ${unsafe}`);
    },
    abort: async () => {
      (await ready.catch(() => undefined))?.abort(new Error('pull aborted'));
    },
  };
}

function fileSink(dest: string, source: string): Sink {
  const parser = new tar.Parser({ strict: true });
  let target: string | undefined;
  let temp: string | undefined;
  let members = 0;
  const written = new Promise<void>((resolveDone, reject) => {
    parser.on('error', reject);
    parser.on('entry', (entry: tar.ReadEntry) => {
      if (entry.type !== 'File' || members++ > 0) {
        entry.resume();
        return reject(new GuestCommandError('UNSAFE_ARCHIVE', `the pull of file ${source} brought a ${entry.type} member ${entry.path}`));
      }
      const mode = (entry.mode ?? 0o644) & 0o7777;
      const mtime = entry.mtime;
      (async () => {
        target = await fileTarget(dest, source);
        temp = join(dirname(target), `.${basename(target)}.${randomBytes(4).toString('hex')}.part`);
        const handle = await open(temp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
        try {
          for await (const chunk of entry as AsyncIterable<Buffer>) await handle.write(chunk);
        } finally {
          await handle.close();
        }
        await chmod(temp, mode);
        if (mtime) await utimes(temp, mtime, mtime);
        await rename(temp, target);
        temp = undefined;
      })().then(resolveDone, reject);
    });
  });
  written.catch(() => {});
  return {
    write: (chunk) => parser.write(chunk),
    finish: async () => {
      parser.end();
      await written.catch((error) => {
        if (error instanceof KvmtestError) throw error;
        throw new KvmtestError('HOST_IO', `cannot write the pulled file to ${dest}: ${error.message}`, { cause: error });
      });
    },
    abort: async () => {
      parser.abort(new Error('pull aborted'));
      if (temp) await rm(temp, { force: true });
    },
  };
}

/** dest itself, or dest/<name> when dest is an existing directory; parents are created. */
async function fileTarget(dest: string, source: string): Promise<string> {
  const info = await stat(dest).catch(() => undefined);
  if (info?.isDirectory()) return join(dest, basename(source));
  await mkdir(dirname(resolve(dest)), { recursive: true });
  return resolve(dest);
}

/** Why a member may not be unpacked under root, or undefined when it may. */
export function escapes(root: string, path: string, linkpath?: string, type?: string): string | undefined {
  if (isAbsolute(path)) return `absolute path ${path}`;
  const target = resolve(root, path);
  if (!within(root, target)) return `${path} points outside the destination`;
  if (type === 'SymbolicLink' && linkpath !== undefined) {
    const linkTarget = resolve(dirname(target), linkpath);
    if (isAbsolute(linkpath) || !within(root, linkTarget)) return `symbolic link ${path} -> ${linkpath} points outside the destination`;
  }
  if (type === 'Link' && linkpath !== undefined && !within(root, resolve(root, linkpath))) return `hard link ${path} -> ${linkpath} points outside the destination`;
  if (type && ['CharacterDevice', 'BlockDevice', 'FIFO'].includes(type)) return `${type} member ${path}`;
  return undefined;
}

function within(root: string, target: string): boolean {
  const r = normalize(root);
  return target === r || target.startsWith(r.endsWith(sep) ? r : r + sep);
}

function assertGuestPath(path: string, what: string): void {
  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw new InputError('INVALID_OPTION', `Expected the ${what} to be an absolute path in the guest, got ${JSON.stringify(path)}`);
  }
}

/** Opens a channel whose answer settles on the `until` frame type or an error frame. */
function request(client: AgentClient, until: 'done' | 'end', onFrame?: (frame: Frame<AgentMessage>) => void): { channel: Channel; answer: Promise<void> } {
  let channel!: Channel;
  const answer = new Promise<void>((resolveAnswer, reject) => {
    channel = client.open({
      onFrame: (frame) => {
        if (frame.header.t === 'error') {
          channel.close();
          return reject(transferError(frame.header));
        }
        onFrame?.(frame);
        if (frame.header.t === until) {
          channel.close();
          resolveAnswer();
        }
      },
      onLinkError: reject,
    });
  });
  answer.catch(() => {});
  return { channel, answer };
}

function transferError(answer: ErrorAnswer): GuestCommandError {
  if (answer.code === 'EBADTAR') return new GuestCommandError('UNSAFE_ARCHIVE', `the guest refused the archive: ${answer.message}`);
  return new GuestCommandError('GUEST_IO', `${answer.code}: ${answer.message} (in the guest)`);
}
