import { mkdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { finished } from 'node:stream/promises';
import { execa } from 'execa';
import { KvmtestError, kvmtestError } from '../errors.js';
import type { AgentClient, Exchange } from './client.js';
import { CreditWindow } from './credit.js';
import { abortError, type TransferOptions, transferSignal } from './deadline.js';
import { CHUNK_BYTES, type TransferKind } from './protocol.js';
import { DEFAULT_LIMITS, type DroppedMember, type PullLimits, TreeExtractor } from './pull/extract.js';
import { finalTarget, makeStage, moveIntoPlace, prepareDestination, removeMade, removeStage } from './pull/place.js';

/**
 * Copies a host file or directory to `dest` in the guest as a tar stream (the host's GNU tar); modes are kept.
 * On abort or timeout the stream is ended early: the agent stops, what arrived so far stays in the guest.
 */
export async function push(client: AgentClient, source: string, dest: string, options: TransferOptions = {}): Promise<void> {
  assertGuestPath(dest, 'push destination');
  const { signal, done } = transferSignal(`push of ${source}`, options);
  try {
    await pushStream(client, source, dest, signal);
  } finally {
    done();
  }
}

async function pushStream(client: AgentClient, source: string, dest: string, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) throw abortError(`push of ${source}`, signal);
  const info = await stat(source).catch((error: NodeJS.ErrnoException) => {
    throw kvmtestError('LOCAL_PATH_NOT_FOUND', `cannot push ${source}: ${error.code === 'ENOENT' ? 'no such file or directory on the host' : error.message}`, { cause: error });
  });
  const kind: TransferKind = info.isDirectory() ? 'dir' : 'file';
  if (kind === 'file' && !info.isFile()) throw kvmtestError('INVALID_OPTION', `cannot push ${source}: only regular files and directories can be pushed`);

  const credit = new CreditWindow(); // paced by the agent's `consumed` frames
  const exchange = client.request('push', { dest, kind }, { onFrame: ({ header }) => header.t === 'consumed' && credit.grant(header.bytes) });
  // the guest may refuse early (disk full, unsafe member), the caller may stop: stop sending at once
  let refused: unknown;
  const stopSending = (error: unknown) => {
    refused ??= error;
    credit.close();
  };
  exchange.answer.catch(stopSending);
  const archive = tarStream(source, kind);
  const onAbort = () => {
    const error = abortError(`push of ${source}`, signal!);
    stopSending(error);
    archive.kill();
    exchange.close(error);
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  const send = async (chunk: Buffer) => {
    await credit.take(chunk.length);
    if (refused) throw refused;
    await exchange.send({ t: 'data' }, chunk);
  };
  try {
    for await (const chunk of archive.stdout as AsyncIterable<Buffer>) {
      for (let at = 0; at < chunk.length; at += CHUNK_BYTES) await send(chunk.subarray(at, at + CHUNK_BYTES));
    }
    const result = await archive;
    if (refused) throw refused;
    if (result.exitCode !== 0) throw kvmtestError('HOST_IO', `cannot push ${source}: tar: ${new TextDecoder().decode(result.stderr).trim().split('\n').slice(-2).join(' ')}`);
    await exchange.send({ t: 'end' });
    await exchange;
  } catch (error) {
    archive.kill();
    exchange.close(error);
    // an agent still reading would wait for the rest until the link ends: the stream's end lets it go (one that answered ignores it)
    exchange.send({ t: 'end' }).catch(() => {});
    throw refused ?? error;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * The host's GNU tar writing a push's archive to its stdout: names as bytes (a name that is not UTF-8
 * is still pushed), hard links as links, holes as holes, owner root; member names start with './'.
 */
function tarStream(source: string, kind: TransferKind) {
  const [cwd, member] = kind === 'dir' ? [source, '.'] : [dirname(source), `./${basename(source)}`];
  // the named source is followed when it is a link (as a push by disk does), links inside a tree stay links: a tree's `.` is
  // the link's target already, a file's one member needs --dereference (which follows nothing else: it has no tree)
  const follow = kind === 'file' ? ['--dereference'] : [];
  return execa('tar', ['--create', '--file=-', '--format=gnu', '--sparse', '--numeric-owner', '--owner=0', '--group=0', ...follow, `--directory=${cwd}`, '--', member], {
    buffer: { stdout: false, stderr: true },
    reject: false,
    stdin: 'ignore',
    encoding: 'buffer',
    lines: false,
  });
}

export interface PullOptions extends Partial<PullLimits>, TransferOptions {}

export interface PullResult {
  /** Members not made on the host, and why: links leading outside or dangling, special files, duplicates (at most 1000 listed). */
  dropped: DroppedMember[];
  droppedTotal: number;
  /** Tar stream bytes received from the guest. */
  bytes: number;
  entries: number;
}

/**
 * Copies a guest file or directory to the host. A file lands at `dest` (or inside it, when `dest`
 * is an existing directory); a directory's contents land at `dest`, which must be new or empty.
 * The guest's archive is unpacked into a private directory next to `dest` and moved into place
 * only when complete, so a refused pull leaves nothing (see pull/extract.ts for the rules).
 * Refused: a destination that is or lies under a symbolic link (PULL_DEST_SYMLINK), unsafe member
 * names (UNSAFE_ARCHIVE), more than maxBytes or maxEntries (PULL_TOO_LARGE, PULL_TOO_MANY_ENTRIES:
 * the caps go to the agent, which stops itself at them, and the host counts too), past `timeout`
 * (TRANSFER_TIMEOUT) or on `signal` (ABORTED). Links that would lead outside or dangle, and special
 * files, are dropped and listed in the result. A pull the host gives up on is ended in the guest too.
 */
export async function pull(client: AgentClient, source: string, dest: string, options: PullOptions = {}): Promise<PullResult> {
  assertGuestPath(source, 'pull source');
  const limits = pullLimits(options);
  const { signal, done } = transferSignal(`pull of ${source}`, options);
  try {
    return await pullInto(client, source, dest, limits, signal);
  } finally {
    done();
  }
}

async function pullInto(client: AgentClient, source: string, dest: string, limits: PullLimits, signal: AbortSignal | undefined): Promise<PullResult> {
  const what = `pull of ${source}`;
  if (signal?.aborted) throw abortError(what, signal);
  const destination = await prepareDestination(dest);
  let stage: string | undefined;
  let extractor: TreeExtractor | undefined;
  let target: Promise<string> | undefined;
  let stop!: (error: unknown) => void;
  const stopped = new Promise<never>((_, reject) => (stop = reject));
  stopped.catch(() => {});
  const onAbort = () => stop(abortError(what, signal!));
  signal?.addEventListener('abort', onAbort, { once: true });
  let exchange: Exchange<'pull'> | undefined;
  try {
    stage = await makeStage(destination.path);
    const root = join(stage, 'root');
    await mkdir(root, 0o755);
    if (signal?.aborted) throw abortError(what, signal);
    exchange = client.request(
      'pull',
      { path: source, maxEntries: limits.maxEntries, maxBytes: limits.maxBytes },
      {
        onFrame: ({ header, body }) => {
          if (header.t === 'pull-start' && !extractor) {
            const kind = header.kind === 'file' ? 'file' : 'dir';
            extractor = new TreeExtractor(kind === 'file' ? join(stage!, 'file') : root, join(stage!, 'links'), kind, limits);
            extractor.on('error', stop);
            // the destination's own check runs while the data comes: it fails the pull as early as it can
            target = finalTarget(destination, kind, source);
            target.catch(stop);
          } else if (header.t === 'data' && extractor && !extractor.destroyed) {
            const ex = extractor;
            if (!ex.write(body)) {
              exchange!.pause();
              ex.once('drain', () => exchange!.resume());
            }
          }
        },
      },
    );
    await Promise.race([exchange.answer, stopped]);
    if (!extractor || !target) throw kvmtestError('GUEST_IO', `the guest agent ended the pull of ${source} without data`);
    const ex: TreeExtractor = extractor;
    ex.end();
    await Promise.race([finished(ex), stopped]);
    const path = await target;
    await moveIntoPlace(ex.kind === 'file' ? join(stage, 'file') : root, path);
    const { dropped, droppedTotal, received, entries } = ex.result;
    return { dropped, droppedTotal, bytes: received, entries };
  } catch (error) {
    if (exchange) {
      exchange.close();
      // the agent would stream the rest into a closed request: its `end` stops it (one that finished ignores it)
      exchange.send({ t: 'end' }).catch(() => {});
    }
    await extractor?.dispose(error instanceof Error ? error : undefined);
    if (stage) await removeStage(stage);
    stage = undefined;
    await removeMade(destination.made);
    if (error instanceof KvmtestError) throw error;
    throw kvmtestError('HOST_IO', `cannot pull ${source} to ${dest}: ${(error as Error).message}`, { cause: error });
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (stage) await removeStage(stage);
  }
}

/** The caps, defaults filled in; INVALID_OPTION names a bad one. */
function pullLimits(options: PullOptions): PullLimits {
  const limits = { ...DEFAULT_LIMITS };
  for (const name of ['maxBytes', 'maxEntries'] as const) {
    const value = options[name];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
      throw kvmtestError('INVALID_OPTION', `Expected the "${name}" option to be a positive integer, got ${JSON.stringify(value)} (${typeof value})`);
    }
    limits[name] = value;
  }
  return limits;
}

export function assertGuestPath(path: string, what: string): void {
  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw kvmtestError('INVALID_OPTION', `Expected the ${what} to be an absolute path in the guest, got ${JSON.stringify(path)}`);
  }
}
