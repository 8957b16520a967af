import { randomBytes } from 'node:crypto';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import createDebug from 'debug';
import type { Exchange } from '../agent/client.js';
import { abortError, whenAborted } from '../agent/deadline.js';
import type { CopyInRequest } from '../agent/protocol.js';
import { kvmtestError } from '../errors.js';
import { findTools } from '../host/tools.js';
import type { Machine } from '../machine/machine.js';
import { type Attached, attachDisk } from './hotplug.js';
import { makeTreeImage } from './image.js';
import { type TreeStats, treeStats } from './tree.js';

const debug = createDebug('kvmtest:attach');

/** How a push travels: a tar stream over the agent's link, or a disk attached for it. */
export type PushVia = 'auto' | 'stream' | 'disk';

/** Above these a push goes by disk ('auto'): the link moves a few MiB/s under TCG, a disk far more. */
export const DISK_THRESHOLD = { bytes: 16 * 2 ** 20, entries: 256 } as const;

/** Which path a push of this size takes. Pure. */
export function choosePushPath(via: PushVia, what: { kind: 'file' | 'dir'; bytes: number; entries: number }, canImage: boolean): 'stream' | 'disk' {
  if (via !== 'auto') return via;
  if (what.kind === 'file') return what.bytes >= DISK_THRESHOLD.bytes ? 'disk' : 'stream';
  // a tree needs mke2fs: without it 'auto' streams ('disk' says what to install)
  if (!canImage) return 'stream';
  return what.bytes >= DISK_THRESHOLD.bytes || what.entries >= DISK_THRESHOLD.entries ? 'disk' : 'stream';
}

/** How long an agent that was told to stop a copy-in may take to let go of the disk (unmount) before it is detached anyway. */
const CANCEL_GRACE_MS = 2000;

/** What a push source is, for choosing its path: a file's size, or a tree's entries and bytes. */
export async function describeSource(source: string): Promise<{ kind: 'file' | 'dir'; bytes: number; entries: number; mode: number; tree?: TreeStats } | undefined> {
  // stat, not lstat: a source that is a link is followed, as a streamed push follows it (links inside a tree are not)
  const info = await stat(source).catch(() => undefined);
  // missing or special: the streamed push says why, with its code
  if (!info || (!info.isDirectory() && !info.isFile())) return undefined;
  if (!info.isDirectory()) return { kind: 'file', bytes: info.size, entries: 1, mode: info.mode & 0o7777 };
  // a tree that cannot be walked (an unreadable directory in it): the streamed push says why, with its code
  const tree = await treeStats(source).catch(() => undefined);
  if (!tree) return undefined;
  return { kind: 'dir', bytes: tree.bytes, entries: tree.entries, mode: info.mode & 0o7777, tree };
}

/** Whether this host can make a tree's disk image (e2fsprogs' mke2fs). */
export async function mke2fsPath(): Promise<string | undefined> {
  return (await findTools()).mke2fs;
}

/**
 * Pushes by disk: a file is attached as itself (read-only), a tree as an ext2 image made in the
 * machine's private dir; the agent copies it into `dest` (same result as a streamed push: the files are
 * root's, modes, links and hard links kept), then the disk is detached and the image deleted,
 * whether the copy worked or not. On `signal` (the caller's, or a deadline's) the agent is told to stop,
 * the disk detached, and ABORTED or TRANSFER_TIMEOUT thrown.
 */
export async function pushByDisk(
  machine: Machine,
  source: string,
  dest: string,
  what: NonNullable<Awaited<ReturnType<typeof describeSource>>>,
  mke2fs: string | undefined,
  options: { signal?: AbortSignal } = {},
): Promise<void> {
  const { signal } = options;
  if (signal?.aborted) throw abortError(`push of ${source}`, signal);
  const started = performance.now();
  // in the machine's private dir: if this process dies mid-push, the reaper removes it with the rest
  const image = what.kind === 'dir' ? join(machine.dir, `push-${randomBytes(4).toString('hex')}.img`) : undefined;
  try {
    let file = source;
    if (image) {
      if (!mke2fs) throw kvmtestError('INVALID_OPTION', "a push by disk of a directory needs mke2fs (e2fsprogs): apt-get install e2fsprogs, or push with via: 'stream'");
      file = image;
      await makeTreeImage(mke2fs, source, what.tree!, file, signal);
    }
    const imaged = performance.now();
    const attached = await attachDisk(machine, file);
    await copyIn(machine, attached, { kind: what.kind, dest, ...(what.kind === 'file' ? { bytes: what.bytes, mode: what.mode } : {}) }, signal, `push of ${source}`);
    debug('%s: pushed %s (%d entries, %d bytes) by disk in %d ms (image %d ms)', machine.name, source, what.entries, what.bytes, performance.now() - started, imaged - started);
  } finally {
    if (image) await rm(image, { force: true });
  }
}

/**
 * Asks the agent to copy in (or mount) the attached disk, then detaches it, unless `keep` (a mount
 * keeps it on success). On abort the agent is told to stop (`end` on the request's id) and given
 * CANCEL_GRACE_MS to unmount; on any failure the disk is detached and the failure thrown.
 */
export async function copyIn(machine: Machine, attached: Attached, fields: Omit<CopyInRequest, 't' | 'id' | 'target'>, signal: AbortSignal | undefined, what: string, keep = false): Promise<void> {
  const stop = whenAborted(what, signal);
  try {
    if (signal?.aborted) throw abortError(what, signal);
    const exchange = machine.agent.request('copy-in', { target: attached.target, ...fields });
    try {
      await Promise.race([exchange.answer, stop.aborted]);
    } catch (error) {
      if (signal?.aborted) await cancel(exchange);
      throw error;
    }
  } catch (error) {
    // the caller hears why it failed; a disk QEMU would not release stays until the machine stops
    await attached.detach().catch((detachError: Error) => debug('%s: detach after the failed %s: %s', machine.name, what, detachError.message));
    throw error;
  } finally {
    stop.off();
  }
  if (!keep) await attached.detach();
}

/** Tells the agent to stop a copy-in and waits (a little) for it to answer: it unmounts before it does. */
async function cancel(exchange: Exchange<'copy-in'>): Promise<void> {
  const answered = exchange.answer.then(
    () => {},
    () => {},
  );
  exchange.send({ t: 'end' }).catch(() => {});
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([answered, new Promise((resolve) => (timer = setTimeout(resolve, CANCEL_GRACE_MS)))]);
  clearTimeout(timer);
  exchange.close();
}
