import createDebug from 'debug';
import { AgentClient, LINK_LOSS_GRACE_MS } from '../agent/client.js';
import { type TransferOptions, transferSignal } from '../agent/deadline.js';
import { type ExecOptions, type ExecResult, GuestProcess } from '../agent/exec.js';
import type { HelloAnswer } from '../agent/protocol.js';
import { assertGuestPath, type PullOptions, type PullResult, pull, push } from '../agent/transfer.js';
import { mountTree } from '../attach/mount.js';
import { choosePushPath, describeSource, mke2fsPath, type PushVia, pushByDisk } from '../attach/push.js';
import type { CapsuleInfo, CapsuleNotes } from '../capsule/save.js';
import { KvmtestError, kvmtestError } from '../errors.js';
import type { Accel } from '../host/accel.js';
import type { Machine } from '../machine/machine.js';
import { AGENT_PORT_ID } from '../qemu/argv.js';
import { connectWithRetry } from '../qemu/qmp.js';
import { parseDuration } from '../util/units.js';
import type { Checkpoint } from './checkpoint.js';
import type { GuestState } from './state.js';

const debug = createDebug('kvmtest:guest');
const RECONNECT_PAUSE_MS = 300;
/** How long a killed agent may take to be restarted by systemd (RestartSec=1) and say hello. */
const AGENT_RESTART_TIMEOUT_MS = 60_000;
/** A guest that cannot sync in this long (hung I/O) is saved as it is. */
const SYNC_BEFORE_CAPSULE_MS = 3000;

export interface GuestExecOptions extends Omit<ExecOptions, 'timeoutMs'> {
  /** '10m', '90s' or milliseconds. */
  timeout?: string | number;
}

export interface GuestInfo {
  name: string;
  accel: Accel;
  cpus: number;
  memoryMiB: number;
  /** The guest's private host directory: overlay, seed, sockets, console log. */
  dir: string;
  consolePath: string;
  agentSocket: string;
  /** What the agent said in its hello: OS release, kernel, architecture, hostname. */
  agent: HelloAnswer;
  /** Milliseconds from boot() to the agent's hello. */
  bootMs: number;
  /** Key of the warm snapshot this guest was restored from; absent for a cold boot. */
  snapshot?: string;
  /** With `network.forwards`: each guest port and the 127.0.0.1 port that reaches it. */
  forwards?: { guest: number; host: number }[];
  /** For a guest lent by a shared pool: the pid of the process that restored it and runs its QEMU. */
  owner?: number;
}

/** How a guest saves itself: a checkpoint (it runs on), a capsule (it is paused for good). Made by boot(), which knows the plan. */
export interface GuestSavers {
  checkpoint(signal?: AbortSignal): Promise<Checkpoint>;
  capsule(dir: string, notes: CapsuleNotes, signal?: AbortSignal): Promise<CapsuleInfo>;
}

/** Each guest's machine, for the pool owner that lends it (pool/owner.ts); not part of the public API. */
const machines = new WeakMap<Guest, Machine>();

/** The machine behind a guest (internal: the pool lends it to another process). */
export function machineOf(guest: Guest): Machine {
  const machine = machines.get(guest);
  if (!machine) throw kvmtestError('INTERNAL', 'not a kvmtest guest');
  return machine;
}

/**
 * A running guest: exec, spawn, push, pull; dispose() (or `await using`) stops it and removes its
 * files. A facade over one Machine (QEMU, QMP, private dir, lifecycle) and its agent link.
 */
export class Guest implements AsyncDisposable {
  readonly info: GuestInfo;
  private relinking: Promise<void> | undefined;
  private readonly machine: Machine;

  private readonly savers: GuestSavers;

  constructor(machine: Machine, info: GuestInfo, savers: GuestSavers) {
    this.machine = machine;
    machines.set(this, machine);
    this.info = info;
    this.savers = savers;
    // QEMU exits, guest shutdowns and panics are the machine's to report (it closes the link with the cause); an agent restart is ours
    machine.qmp.on('event', (event) => {
      if (event.event === 'VSERPORT_CHANGE' && event.data?.id === AGENT_PORT_ID && event.data.open === false) this.agentLost();
    });
  }

  private get agent(): AgentClient {
    return this.machine.agent;
  }

  get state(): GuestState {
    const state = this.machine.state;
    if (state === 'starting') throw kvmtestError('INTERNAL', `guest ${this.info.name} exists before its machine started`);
    // from the moment dispose() is called, even while it waits for an operation in flight
    if (this.machine.stopRequested && (state === 'running' || state === 'failed')) return 'stopping';
    return state;
  }

  /** Runs a command to completion: an argv array runs directly, a string runs under /bin/sh -c. */
  async exec(command: string | string[], options: GuestExecOptions = {}): Promise<ExecResult> {
    await this.relinking;
    return this.start(command, options, false);
  }

  /** Starts a command and returns it live: stdout/stderr streams, stdin, lines(), kill(); await it for the result. */
  spawn(file: string | string[], args: string[] = [], options: GuestExecOptions = {}): GuestProcess {
    const argv = Array.isArray(file) ? [...file, ...args] : [file, ...args];
    return this.start(argv, options, true);
  }

  /**
   * Copies a host file or directory into the guest (dest is the path it becomes). Large ones (16 MiB,
   * or 256 entries) go by disk: the file itself, or an ext2 image of the tree, hot-plugged read-only
   * and copied in by the agent, then detached; small ones stream over the agent's link. `via` forces one.
   * A source that is a symbolic link is followed either way (links inside a tree stay links).
   * `signal` stops it (ABORTED), `timeout` bounds it (TRANSFER_TIMEOUT): a disk is detached, what arrived stays.
   */
  async push(source: string, dest: string, options: { via?: PushVia } & TransferOptions = {}): Promise<void> {
    await this.relinking;
    this.assertRunning();
    const via = options.via ?? 'auto';
    if (!['auto', 'stream', 'disk'].includes(via)) throw kvmtestError('INVALID_OPTION', `Expected the "via" option to be 'auto', 'stream' or 'disk', got ${JSON.stringify(via)}`);
    const { signal, done } = transferSignal(`push of ${source}`, options);
    try {
      if (via !== 'stream') {
        assertGuestPath(dest, 'push destination');
        const what = await describeSource(source);
        const mke2fs = await mke2fsPath();
        if (what && choosePushPath(via, what, Boolean(mke2fs)) === 'disk') {
          // QMP and the agent fail differently when QEMU dies mid-way: the machine's own cause wins
          await pushByDisk(this.machine, source, dest, what, mke2fs, { signal }).catch((error) => this.rethrow(this.machine.error ?? error));
          return;
        }
      }
      await push(this.agent, source, dest, { signal }).catch((error) => this.rethrow(error));
    } finally {
      done();
    }
  }

  /**
   * Shows a host directory at `dest` in the guest, as it is now: an ext2 image of it (made in the
   * guest's private dir), hot-plugged and mounted read-only; with `writable`, an overlay on it takes
   * the guest's writes on the guest's own disk (the host's files never change). Faster than a push
   * for a tree the guest mostly reads (fixtures, a toolchain); later host changes are not seen.
   * `signal` stops it (ABORTED), `timeout` bounds it (TRANSFER_TIMEOUT): the disk is detached again.
   */
  async mount(source: string, dest: string, options: { writable?: boolean } & TransferOptions = {}): Promise<void> {
    await this.relinking;
    this.assertRunning();
    assertGuestPath(dest, 'mount point');
    const { signal, done } = transferSignal(`mount of ${source}`, options);
    try {
      await mountTree(this.machine, source, dest, options.writable === true, { signal }).catch((error) => this.rethrow(this.machine.error ?? error));
    } finally {
      done();
    }
  }

  /**
   * Copies a guest file or directory to the host, safely: see `pull()` in agent/transfer.ts. The
   * result lists the members that were dropped (links leading outside or dangling, special files).
   * maxEntries / maxBytes cap it (the guest's agent is told them and stops itself; the host counts too),
   * `signal` stops it (ABORTED), `timeout` bounds it (TRANSFER_TIMEOUT); a refused pull leaves nothing.
   */
  async pull(source: string, dest: string, options: PullOptions = {}): Promise<PullResult> {
    await this.relinking;
    this.assertRunning();
    return pull(this.agent, source, dest, options).catch((error) => this.rethrow(error));
  }

  /** One agent round trip. */
  async ping(): Promise<void> {
    await this.relinking;
    this.assertRunning();
    await this.agent.ping().catch((error) => this.rethrow(error));
  }

  /**
   * Drops the agent link and connects afresh (requests in flight fail with AGENT_DISCONNECTED;
   * the agent kills what they started). Used after restoring a snapshot, and to prove the agent
   * survives the host going away.
   */
  async reconnect(options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<HelloAnswer> {
    this.assertRunning();
    this.agent.close(kvmtestError('AGENT_DISCONNECTED', 'the host reconnected the agent link'));
    // the guest learns of the hang-up on a separate queue: give it time to end the old session
    await new Promise((r) => setTimeout(r, RECONNECT_PAUSE_MS));
    const signal = AbortSignal.any([AbortSignal.timeout(options.timeoutMs ?? 30_000), ...(options.signal ? [options.signal] : [])]);
    const socket = await connectWithRetry(this.info.agentSocket, signal, 50);
    this.machine.relink(new AgentClient(socket, LINK_LOSS_GRACE_MS));
    const hello = await this.agent.handshake({ signal, repeatMs: 2000 }).catch((error) => this.rethrow(error));
    Object.assign(this.info, { agent: hello });
    return hello;
  }

  /**
   * Captures this guest as it is now (RAM, devices, disk) and returns a Checkpoint whose boot() gives
   * new, independent guests at exactly this moment. This guest pauses for one local migration and runs on.
   */
  async checkpoint(options: { signal?: AbortSignal } = {}): Promise<Checkpoint> {
    await this.relinking;
    this.assertRunning();
    return this.savers.checkpoint(options.signal);
  }

  /**
   * Saves this guest whole into `dir` (a new directory) as a failure capsule, then disposes it: RAM
   * and devices, its disk over the base image, seed, console log and a manifest. The guest is asked
   * to `sync` first (at most 3 s), so its disk alone also holds the files written before. `kvmtest repro DIR`
   * restores that moment on any host with the same base image and a QEMU that has its machine type.
   * Boot with a named `cpu` (such as 'Nehalem') for a capsule that moves between hosts.
   */
  async saveCapsule(dir: string, options: { notes?: Partial<CapsuleNotes>; signal?: AbortSignal } = {}): Promise<CapsuleInfo> {
    try {
      await this.relinking;
      this.assertRunning();
      // best effort, bounded: the guest's page cache reaches its disk, so a cold boot of the capsule's disk sees those files too
      await this.exec(['sync'], { timeout: SYNC_BEFORE_CAPSULE_MS }).catch((error: unknown) => debug('%s: sync before the capsule: %s', this.info.name, (error as Error).message));
      return await this.savers.capsule(dir, { hostname: this.info.agent.hostname, ...options.notes }, options.signal);
    } finally {
      await this.dispose();
    }
  }

  /** A QMP command to QEMU, for what kvmtest does not wrap. */
  qmpCommand<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    return this.machine.qmp.execute<T>(command, args);
  }

  /** The last lines of the serial console. */
  consoleTail(lines = 50): string {
    return this.machine.consoleTail(lines);
  }

  get pid(): number | undefined {
    return this.machine.pid;
  }

  /**
   * Stops QEMU (QMP quit, then SIGTERM, then SIGKILL) and removes the overlay, seed, sockets and
   * console log. Safe to call twice; the second call waits for the first.
   */
  dispose(): Promise<void> {
    // the machine's stop is once-only and waits for a start or save in flight
    return this.machine.stop();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  private start(command: string | string[], options: GuestExecOptions, live: boolean): GuestProcess {
    this.assertRunning();
    const target = Array.isArray(command) ? { argv: command } : { shell: command };
    if (Array.isArray(command) && (command.length === 0 || command.some((a) => typeof a !== 'string'))) {
      throw kvmtestError('INVALID_OPTION', `Expected the command to be a non-empty array of strings or a shell string, got ${JSON.stringify(command)}`);
    }
    const { timeout, ...rest } = options;
    const child = new GuestProcess(this.agent, target, { ...rest, ...(timeout !== undefined ? { timeoutMs: parseDuration(timeout) } : {}) }, { live });
    child.then(undefined, (error) => this.rethrow(error)).catch(() => {});
    return child;
  }

  private assertRunning(): void {
    const state = this.machine.state;
    if (state === 'running' && !this.machine.stopRequested) return;
    const failure = this.machine.error ?? this.agent.error;
    if (state === 'failed' && failure) throw failure;
    throw kvmtestError('GUEST_DISPOSED', `the guest is ${state === 'running' ? 'stopping' : state}; boot a new one`);
  }

  /** Attaches the console tail to link failures, which are explained by the guest's state. */
  private rethrow(error: unknown): never {
    if (error instanceof KvmtestError && ['AGENT_DISCONNECTED', 'KERNEL_PANIC', 'QEMU_EXITED'].includes(error.code) && error.consoleTail === undefined) {
      error.consoleTail = this.consoleTail();
    }
    throw error;
  }

  /**
   * The agent closed its port inside the guest (killed, crashed): whatever was pending fails now,
   * and the link is made again when systemd has restarted it; requests wait for that.
   */
  private agentLost(): void {
    if (this.machine.state !== 'running' || this.machine.stopRequested || this.relinking) return;
    debug('%s: the agent closed its port', this.info.name);
    this.agent.close(
      Object.assign(kvmtestError('AGENT_DISCONNECTED', 'the guest agent went away inside the guest (killed or crashed); requests in flight are lost, new ones wait for it to restart'), {
        consoleTail: this.consoleTail(),
      }),
    );
    this.relinking = this.reconnect({ timeoutMs: AGENT_RESTART_TIMEOUT_MS })
      .then(
        () => undefined,
        (error) => debug('%s: agent did not come back: %s', this.info.name, error instanceof Error ? error.message : error),
      )
      .finally(() => {
        this.relinking = undefined;
      });
  }
}
