// A capsule is input from anywhere (a CI artifact, a colleague's download): what its manifest names
// (a base, a network, a state size, disk references) is judged here before a restore trusts any of it.

import { statfs } from 'node:fs/promises';
import { totalmem } from 'node:os';
import { basename } from 'node:path';
import { kvmtestError } from '../errors.js';
import { loadCatalog } from '../image/catalog-file.js';
import { readHead } from '../image/disk.js';
import { qcow2References } from '../image/qcow2-header.js';
import { isRecipeName } from '../image/recipes.js';
import { type CapsuleManifest, damaged } from './manifest.js';

/** What a catalog or recipe name looks like; a path or a URL does not. */
const IMAGE_NAME = /^[a-z0-9][a-z0-9.+_-]{0,63}$/i;

/**
 * The base image a restore opens: the file the user passed (`--base`), else the name the manifest
 * records, which must be a catalog or recipe name kvmtest pulls or builds itself. A manifest never
 * names a path (it would open a file the capsule's maker chose, with the backing chain and data file
 * that file names) nor a URL (CAPSULE_BASE_MISSING, saying to pass --base FILE).
 */
export async function capsuleBaseImage(dir: string, manifest: CapsuleManifest, userBase: string | undefined): Promise<string> {
  if (userBase !== undefined) return userBase;
  const name = manifest.base.name;
  const known = IMAGE_NAME.test(name) && (isRecipeName(name) || (await loadCatalog()).some((entry) => entry.name === name));
  if (known) return name;
  const what = /^[a-z][a-z0-9+.-]*:\/\//i.test(name) ? 'by URL' : 'by a name that is not a catalog or recipe name';
  throw kvmtestError(
    'CAPSULE_BASE_MISSING',
    `the capsule ${dir} names its base ${what} (${JSON.stringify(name)}); kvmtest opens a capsule's base only by a name it pulls or builds itself, never a path or URL the capsule gives: get the image yourself and pass --base FILE`,
  );
}

/**
 * The network a restored machine gets: the NIC the saved devices expect (so a capsule that had one
 * keeps one), but restricted (no outbound connection: not to the host, the LAN or the internet)
 * unless the user asked for the capsule's own setting (`--network`). Its forwards (at most
 * MAX_GUEST_PORTS, checked with the manifest) each open a new port on 127.0.0.1 only.
 */
export function reproNetwork(network: CapsuleManifest['machine']['network'], allowOutbound: boolean): false | { forwards: { guest: number }[]; outbound: boolean } {
  if (network === false) return false;
  return { forwards: network.guestPorts.map((guest) => ({ guest })), outbound: allowOutbound && network.outbound };
}

/** Room left on the state's file system after it is unpacked, for the guest's own overlay and logs. */
export const STATE_HEADROOM = 256 * 2 ** 20;

export interface HostRoom {
  /** Bytes free (for this user) where the state is unpacked. */
  freeBytes: number;
  /** The host's memory. */
  memoryBytes: number;
}

/**
 * Refuses (CAPSULE_INCOMPATIBLE) a capsule this host has no room for: its unpacked state must fit
 * in the free space with STATE_HEADROOM to spare (a 1 MB gzip may inflate to the guest's whole
 * RAM), and its guest's memory within the host's. Pure.
 */
export function checkHostRoom(dir: string, manifest: Pick<CapsuleManifest, 'stateBytes' | 'machine'>, room: HostRoom, where: string): void {
  const memory = manifest.machine.memoryMiB * 2 ** 20;
  const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(1)} GiB`;
  if (memory > room.memoryBytes) {
    throw noRoom(dir, `its guest has ${gib(memory)} of memory and this host ${gib(room.memoryBytes)}`);
  }
  if (manifest.stateBytes + STATE_HEADROOM > room.freeBytes) {
    throw noRoom(dir, `its state unpacks to ${gib(manifest.stateBytes)} and ${where} has ${gib(room.freeBytes)} free (set TMPDIR to a roomier place)`);
  }
}

/** The room of this host for a state unpacked into `tmp` (statfs: blocks free to an unprivileged user). */
export async function hostRoom(tmp: string): Promise<HostRoom> {
  const fs = await statfs(tmp);
  return { freeBytes: Number(fs.bavail) * Number(fs.bsize), memoryBytes: totalmem() };
}

function noRoom(dir: string, why: string) {
  return kvmtestError('CAPSULE_INCOMPATIBLE', `the capsule ${dir} cannot be restored on this host: ${why}`);
}

/**
 * The capsule's disks are opened by QEMU with their backing chains spelled out, so a backing file a
 * header names is never followed (and a mounted disk may name none); an external data file would be
 * (a host file read as the guest's disk): refused, CAPSULE_DAMAGED.
 */
export async function refuseDiskReferences(dir: string, disk: string, backingAllowed: boolean): Promise<void> {
  const name = basename(disk);
  const head = await readHead(disk, { noFollow: true }).catch((error: NodeJS.ErrnoException) => {
    throw damaged(dir, `${name} cannot be read as a file (${error.code ?? error.message})`);
  });
  const refs = qcow2References(head);
  if (!refs) throw damaged(dir, `${name} is not a qcow2 image`);
  if (refs.dataFile !== undefined) throw damaged(dir, `${name} names an external data file ${JSON.stringify(refs.dataFile)}: refused`);
  if (!backingAllowed && refs.backingFile !== undefined) throw damaged(dir, `${name} names a backing file ${JSON.stringify(refs.backingFile)}: refused`);
}
