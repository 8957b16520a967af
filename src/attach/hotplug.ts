import createDebug from 'debug';
import { kvmtestError } from '../errors.js';
import type { Machine } from '../machine/machine.js';
import { ATTACH_BUS, attachDevice, attachNode } from '../qemu/argv.js';
import type { QmpEvent } from '../qemu/qmp.js';

const debug = createDebug('kvmtest:attach');
/** SCSI target ids a machine's attached disks use: one per disk at a time. */
const MAX_TARGET = 255;
/** How long QEMU may take to report a detached device gone (virtio-scsi unplugs without the guest). */
const DETACH_TIMEOUT_MS = 10_000;

const inUse = new WeakMap<Machine, Set<number>>();

export interface Attached {
  /** The SCSI target id the disk is on (the agent finds it by this). */
  target: number;
  /** Unplugs the device and removes its block node: safe to call twice. */
  detach(): Promise<void>;
}

/**
 * Hot-plugs a host file into a running machine as a read-only SCSI disk on the controller present
 * from boot (QMP blockdev-add, then device_add scsi-hd): works on guests restored from a snapshot too.
 */
export async function attachDisk(machine: Machine, file: string): Promise<Attached> {
  const used = inUse.get(machine) ?? new Set<number>([...machine.views.keys(), ...(machine.spec.attached ?? []).map((d) => d.target)]);
  inUse.set(machine, used);
  let target = 1;
  while (used.has(target)) target++;
  if (target > MAX_TARGET) throw kvmtestError('INVALID_OPTION', `${MAX_TARGET} disks are attached to ${machine.name} already`);
  used.add(target);
  const node = attachNode(target);
  const id = attachDevice(target);
  const qmp = machine.qmp;
  let plugged = false;
  try {
    await qmp.execute('blockdev-add', { driver: 'raw', 'node-name': node, 'read-only': true, file: { driver: 'file', filename: file, 'read-only': true } });
    await qmp.execute('device_add', { driver: 'scsi-hd', id, bus: `${ATTACH_BUS}.0`, 'scsi-id': target, lun: 0, drive: node });
    plugged = true;
  } catch (error) {
    await qmp.execute('blockdev-del', { 'node-name': node }).catch(() => {});
    used.delete(target);
    throw error;
  }
  debug('%s: %s attached as scsi target %d', machine.name, file, target);
  let detached: Promise<void> | undefined;
  return {
    target,
    detach: () => {
      detached ??= (async () => {
        try {
          if (plugged && machine.state === 'running') await unplug(machine, id);
          await qmp.execute('blockdev-del', { 'node-name': node }).catch((error: unknown) => debug('%s: blockdev-del %s: %s', machine.name, node, (error as Error).message));
        } finally {
          used.delete(target);
        }
      })();
      return detached;
    },
  };
}

/** device_del, and the DEVICE_DELETED event that says QEMU let go of it. */
async function unplug(machine: Machine, id: string): Promise<void> {
  const qmp = machine.qmp;
  let onEvent: ((event: QmpEvent) => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const gone = new Promise<void>((resolve, reject) => {
    onEvent = (event) => event.event === 'DEVICE_DELETED' && event.data?.device === id && resolve();
    qmp.on('event', onEvent);
    timer = setTimeout(() => reject(kvmtestError('QMP_ERROR', `the attached disk ${id} was not released within ${DETACH_TIMEOUT_MS / 1000} s`)), DETACH_TIMEOUT_MS);
  });
  gone.catch(() => {});
  try {
    await qmp.execute('device_del', { id });
    await gone;
  } finally {
    if (onEvent) qmp.off('event', onEvent);
    clearTimeout(timer);
  }
}
