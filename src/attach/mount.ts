import { join } from 'node:path';
import createDebug from 'debug';
import { abortError } from '../agent/deadline.js';
import { kvmtestError } from '../errors.js';
import type { Machine } from '../machine/machine.js';
import { attachDisk } from './hotplug.js';
import { makeTreeImage } from './image.js';
import { copyIn, mke2fsPath } from './push.js';
import { treeStats } from './tree.js';

const debug = createDebug('kvmtest:attach');
let images = 0;

/**
 * Mounts a disk image (ext2) read-only at `dest` in the guest: hot-plugged, mounted by the agent,
 * left attached until the machine stops (a toolchain, a fixture share). On `signal` (the caller's,
 * or a deadline's) the disk is detached and ABORTED or TRANSFER_TIMEOUT thrown.
 */
export async function mountImage(machine: Machine, image: string, dest: string, writable = false, options: { signal?: AbortSignal } = {}): Promise<void> {
  if (options.signal?.aborted) throw abortError(`mount of ${image}`, options.signal);
  const started = performance.now();
  const attached = await attachDisk(machine, image);
  await copyIn(machine, attached, { kind: 'dir', dest, view: true, ...(writable ? { writable } : {}) }, options.signal, `mount of ${image}`, true);
  machine.views.set(attached.target, { image, format: 'raw' });
  debug('%s: %s mounted at %s in %d ms', machine.name, image, dest, performance.now() - started);
}

/** A host directory as a read-only view at `dest`: an ext2 image of it in the machine's private dir (it goes with the machine), mounted. */
export async function mountTree(machine: Machine, source: string, dest: string, writable = false, options: { signal?: AbortSignal } = {}): Promise<void> {
  const mke2fs = await mke2fsPath();
  if (!mke2fs) throw kvmtestError('INVALID_OPTION', 'a read-only mount of a host directory needs mke2fs (e2fsprogs): apt-get install e2fsprogs');
  const image = join(machine.dir, `mount-${++images}.img`);
  await makeTreeImage(mke2fs, source, await treeStats(source), image, options.signal);
  await mountImage(machine, image, dest, writable, options);
}
