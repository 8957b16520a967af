import createDebug from 'debug';
import type { BackingLink } from '../image/disk.js';
import { Machine } from '../machine/machine.js';
import type { Tracked } from '../machine/registry.js';
import { waitReady } from '../machine/wait-ready.js';
import type { MachineSpec } from '../qemu/argv.js';
import type { QemuHandle } from '../qemu/process.js';
import { capsuleOf, checkpoint } from './boot.js';
import { Guest, type GuestInfo } from './guest.js';
import type { BootOptions } from './options.js';
import { prepare } from './prepare.js';

const debug = createDebug('kvmtest:guest');
/** The machine runs already: connecting QMP and the agent takes milliseconds, unless the host is starved. */
const ATTACH_TIMEOUT_MS = 30_000;
/** The lender closed its agent link just before: a hello the old session ate is repeated soon. */
const ATTACH_HELLO_REPEAT_MS = 200;

/** What a lender tells the borrower of a running machine: enough to connect to it and to describe it. */
export interface LentMachine {
  /** QEMU's pid (the lender's child). */
  pid?: number;
  spec: MachineSpec;
  dir: string;
  disk: { node: string; path: string; chain: BackingLink[] };
  info: GuestInfo;
}

/** The borrower neither registers nor reaps the machine: its lender does. */
const LENDERS: Tracked = { registered: Promise.resolve(), started() {}, untrack() {} };

/**
 * A Guest over a machine another process restored and lent (pool/): this process connects its own
 * QMP and agent links and drives it like one of its own; `qemu` reaches the QEMU through the lender.
 * `options` are the boot options it was made with (a checkpoint of it needs their plan).
 */
export async function adoptGuest(options: BootOptions, lent: LentMachine, qemu: QemuHandle): Promise<Guest> {
  const machine = Machine.adopt({ spec: lent.spec, dir: lent.dir, tracked: LENDERS }, qemu);
  machine.disk = lent.disk;
  try {
    await machine.exclusive(() => waitReady(machine, { timeoutMs: ATTACH_TIMEOUT_MS, accel: lent.info.accel, attach: true, repeatMs: ATTACH_HELLO_REPEAT_MS }));
  } catch (error) {
    await machine.stop('kill');
    throw error;
  }
  debug('%s adopted from pid %s', lent.info.name, lent.info.owner);
  const name = lent.info.name;
  return new Guest(
    machine,
    { ...lent.info, agent: { ...machine.hello, hostname: lent.info.agent.hostname } },
    {
      checkpoint: async (signal) => checkpoint(await prepare({ ...options, ...(signal ? { signal } : {}) }), machine, name, signal),
      capsule: async (dir, notes, signal) => capsuleOf(await prepare({ ...options, ...(signal ? { signal } : {}) }), machine, dir, notes, signal),
    },
  );
}
