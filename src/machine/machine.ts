import { closeSync, openSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import createDebug from 'debug';
import type { AgentClient } from '../agent/client.js';
import type { HelloAnswer } from '../agent/protocol.js';
import { type KvmtestError, kvmtestError } from '../errors.js';
import type { BackingLink } from '../image/disk.js';
import { buildQemuArgs, DISK_NODE, type MachineSpec } from '../qemu/argv.js';
import type { ConsoleVerdict } from '../qemu/console.js';
import { type QemuExit, type QemuHandle, QemuProcess } from '../qemu/process.js';
import type { QmpClient, QmpEvent } from '../qemu/qmp.js';
import { OpLock } from './op-lock.js';
import type { MachinePlan } from './plan.js';
import type { Tracked } from './registry.js';
import { Lifecycle, type MachineState } from './state.js';

const debug = createDebug('kvmtest:machine');
/** How long QEMU gets to obey QMP quit, then SIGTERM, before SIGKILL. */
const QUIT_GRACE_MS = 3000;
const TERM_GRACE_MS = 2000;

/** What a machine was started with: the spec, its private dir, and its reaper registration. */
export interface MachineParts {
  spec: MachineSpec;
  dir: string;
  tracked: Tracked;
}

/**
 * One QEMU process with its private dir, reaper registration, QMP client and agent link. Every way it
 * can die on its own is reported once, through onFatal()/fatal, with one code per cause: QEMU exiting
 * or the guest shutting down is QEMU_EXITED, a panic is KERNEL_PANIC, at boot time and later alike.
 */
export class Machine {
  readonly name: string;
  readonly dir: string;
  readonly spec: MachineSpec;
  readonly qemu: QemuHandle;
  /** The first fatal error; never settles for a machine stopped on purpose. */
  readonly fatal: Promise<never>;
  private qmpClient: QmpClient | undefined;
  private agentLink: AgentClient | undefined;
  private helloAnswer: HelloAnswer | undefined;
  private readonly life: Lifecycle;
  private readonly lock: OpLock;
  private readonly tracked: Tracked;
  private readonly listeners = new Set<(error: KvmtestError) => void>();
  private readonly unwatch: (() => void)[] = [];
  private failure: KvmtestError | undefined;
  private watching = true;
  private rejectFatal!: (error: KvmtestError) => void;
  private readonly stopHooks: (() => Promise<void>)[] = [];
  private offQmp: (() => void) | undefined;
  /**
   * The disk as QEMU has it now: the top node (written by the guest) and its file, and what lies below,
   * nearest first. A checkpoint freezes the top into the chain and puts a new overlay above it.
   */
  disk: { node: string; path: string; chain: BackingLink[] };
  /**
   * Disks attached for good (read-only views: a toolchain, a mount) by SCSI target: part of the
   * machine, so a capsule carries them and a checkpoint (whose receiver lacks them) refuses.
   */
  readonly views = new Map<number, { image: string; format: 'raw' | 'qcow2' }>();

  private constructor(parts: MachineParts, qemu: QemuHandle) {
    this.name = parts.spec.name;
    this.dir = parts.dir;
    this.spec = parts.spec;
    this.tracked = parts.tracked;
    this.qemu = qemu;
    this.life = new Lifecycle(`machine ${this.name}`);
    this.lock = new OpLock(`the guest ${this.name}`);
    this.fatal = new Promise<never>((_, reject) => (this.rejectFatal = reject));
    this.fatal.catch(() => {});
    this.disk = { node: DISK_NODE, path: parts.spec.disk, chain: parts.spec.backing };
    for (const disk of parts.spec.attached ?? []) this.views.set(disk.target, { image: disk.path, format: disk.format });
    void qemu.exited.then((exit) => this.fail(exitError(exit, this.stage(), this.what)));
    this.unwatch.push(qemu.console.onFatal((verdict) => this.onVerdict(verdict)));
  }

  /** Starts QEMU for a spec; a restore gets the state file opened here as its fd 3 (QEMU reads it, forking nothing). */
  static launch(plan: Pick<MachinePlan, 'tools'>, parts: MachineParts): Machine {
    const { spec, dir } = parts;
    const state = spec.incomingState === undefined ? undefined : openSync(spec.incomingState, 'r');
    let qemu: QemuProcess;
    try {
      qemu = QemuProcess.start(plan.tools.qemu, buildQemuArgs(spec), join(dir, 'console.log'), plan.tools.setpriv, state);
    } finally {
      // the child holds its own copy
      if (state !== undefined) closeSync(state);
    }
    parts.tracked.started(qemu.pid);
    return new Machine(parts, qemu);
  }

  /**
   * A machine another process started and lent to this one (pool/): QEMU runs there, this process
   * connects its own QMP and agent links (waitReady with `attach`) and stops it through the handle.
   */
  static adopt(parts: MachineParts, qemu: QemuHandle): Machine {
    return new Machine(parts, qemu);
  }

  /**
   * Lends the running machine to another process: its QMP and agent links are closed here (the
   * sockets accept the borrower's), while this side keeps watching QEMU's exit and console.
   */
  lend(): void {
    this.offQmp?.();
    this.offQmp = undefined;
    this.qmpClient?.close();
    this.qmpClient = undefined;
    this.agentLink?.close(kvmtestError('GUEST_DISPOSED', `the guest ${this.name} was lent to another process`));
    this.agentLink = undefined;
  }

  get state(): MachineState {
    return this.life.state;
  }

  get pid(): number | undefined {
    return this.qemu.pid;
  }

  /** The QMP client; there is one once the machine is running. */
  get qmp(): QmpClient {
    if (!this.qmpClient) throw kvmtestError('INTERNAL', `machine ${this.name} has no QMP connection yet`);
    return this.qmpClient;
  }

  /** The current agent link (replaced by relink()). */
  get agent(): AgentClient {
    if (!this.agentLink) throw kvmtestError('INTERNAL', `machine ${this.name} has no agent link yet`);
    return this.agentLink;
  }

  /** The agent's first hello. */
  get hello(): HelloAnswer {
    if (!this.helloAnswer) throw kvmtestError('INTERNAL', `machine ${this.name} has not said hello yet`);
    return this.helloAnswer;
  }

  /** The error that ended the machine, if one did. */
  get error(): KvmtestError | undefined {
    return this.failure;
  }

  /** The last lines of the serial console. */
  consoleTail(lines = 50): string {
    return this.qemu.console.lastLines(lines);
  }

  /** Called once per fatal cause (at once if one already happened); returns the unsubscribe. */
  onFatal(listener: (error: KvmtestError) => void): () => void {
    if (this.failure) {
      listener(this.failure);
      return () => {};
    }
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The QMP client is connected: a guest shutdown it reports is fatal too. */
  attachQmp(qmp: QmpClient): void {
    this.qmpClient = qmp;
    const onEvent = (event: QmpEvent) => {
      if (event.event === 'SHUTDOWN')
        this.fail(kvmtestError('QEMU_EXITED', `the guest shut down${this.stage() === 'running' ? '' : ` during ${this.what}`} (${String(event.data?.reason ?? 'unknown reason')})`));
    };
    qmp.on('event', onEvent);
    this.offQmp = () => qmp.off('event', onEvent);
    this.unwatch.push(() => this.offQmp?.());
  }

  /** The agent answered its first hello: the machine runs. */
  ready(agent: AgentClient, hello: HelloAnswer): void {
    this.agentLink = agent;
    this.helloAnswer = hello;
    this.life.move('running');
  }

  /** A new agent link (after a reconnect) replaces the old one. */
  relink(agent: AgentClient): void {
    this.agentLink = agent;
  }

  /** Runs after the machine stopped and its files went, before stop() resolves. */
  afterStop(hook: () => Promise<void>): void {
    this.stopHooks.push(hook);
  }

  /** stop() was called: the machine is stopping or stopped, or will as soon as the operation in flight ends. */
  get stopRequested(): boolean {
    return this.lock.closed;
  }

  /** Runs an operation (a start, a save) that stop() must wait for; refused once stop() began. */
  exclusive<T>(op: () => Promise<T>): Promise<T> {
    return this.lock.run(op);
  }

  /**
   * Stops QEMU (QMP quit, then SIGTERM, then SIGKILL; 'kill' goes straight to SIGKILL) after the
   * operation in flight, and removes the private dir. Once only: later calls return the first's promise.
   */
  stop(how: 'quit' | 'kill' = 'quit'): Promise<void> {
    return this.lock.close(() => this.halt(how));
  }

  private async halt(how: 'quit' | 'kill'): Promise<void> {
    // a deliberate stop is never reported as a crash
    this.watching = false;
    for (const off of this.unwatch.splice(0)) off();
    this.life.move('stopping');
    this.agentLink?.close(kvmtestError('GUEST_DISPOSED', 'the guest was disposed'));
    if (!this.qemu.hasExited) {
      if (how === 'kill') this.qemu.kill('SIGKILL');
      else {
        // without a QMP connection there is nobody to ask: SIGTERM at once
        if (this.qmpClient) await this.qmpClient.execute('quit').catch(() => {});
        if (!this.qmpClient || !(await settlesWithin(this.qemu.exited, QUIT_GRACE_MS))) {
          this.qemu.kill('SIGTERM');
          if (!(await settlesWithin(this.qemu.exited, TERM_GRACE_MS))) this.qemu.kill('SIGKILL');
        }
      }
    }
    await this.qemu.exited;
    this.qmpClient?.close();
    await this.qemu.console.close();
    await rm(this.dir, { recursive: true, force: true });
    this.tracked.untrack();
    this.life.move('stopped');
    // what depended on this machine's files (a checkpoint's last clone) goes before stop() resolves
    for (const hook of this.stopHooks.splice(0)) await hook().catch((error: unknown) => debug('%s: after-stop hook failed: %s', this.name, (error as Error).message));
    debug('%s stopped', this.name);
  }

  private get what(): string {
    return this.spec.incomingState ? 'restore' : 'boot';
  }

  private stage(): 'starting' | 'running' {
    return this.life.state === 'starting' ? 'starting' : 'running';
  }

  private onVerdict(verdict: ConsoleVerdict): void {
    const starting = this.stage() === 'starting';
    if (verdict.kind === 'panic') this.fail(kvmtestError('KERNEL_PANIC', `the guest kernel panicked${starting ? ` during ${this.what}` : ''}: ${verdict.line}`));
    // after boot a login prompt or a firmware line is the guest's business, not a failure; a restore
    // resumes a guest that booted (and ran cloud-init) in its template: getty may redraw its prompt
    // on the kernel's "virtual machine fork" line before the hello, which is not a missing cloud-init
    else if (!starting || this.spec.incomingState) return;
    else if (verdict.kind === 'no-cloud-init')
      this.fail(
        kvmtestError(
          'NO_CLOUD_INIT',
          `the guest booted to a login prompt (${verdict.line.trim()}) without running cloud-init: kvmtest starts its agent through cloud-init, so the image needs it (cloud images have it; for your own image install the cloud-init package)`,
        ),
      );
    else if (verdict.kind === 'no-root')
      this.fail(
        kvmtestError(
          'NOT_BOOTABLE',
          `the guest kernel could not mount its root file system (${verdict.line.trim()}): check root= in the kernel command line, and that the initramfs has the disk and file system drivers (virtio_blk, ext4)`,
        ),
      );
    else
      this.fail(
        kvmtestError(
          'NOT_BOOTABLE',
          `the firmware found nothing to boot (${verdict.line.trim()}): is the image a bootable disk? For a bare root filesystem use direct kernel boot (kernel, initrd, append)`,
        ),
      );
  }

  private fail(error: KvmtestError): void {
    if (!this.watching || this.failure) return;
    error.consoleTail = this.consoleTail();
    this.failure = error;
    if (this.life.state === 'starting' || this.life.state === 'running') this.life.move('failed');
    debug('%s failed: %s', this.name, error.message);
    // every request pending on the link fails at once with the cause, not a bare disconnect
    this.agentLink?.close(error);
    this.rejectFatal(error);
    for (const listener of [...this.listeners]) listener(error);
  }
}

/** An exit nobody asked for, at boot time or later. */
function exitError(exit: QemuExit, stage: 'starting' | 'running', what: string): KvmtestError {
  return kvmtestError('QEMU_EXITED', `QEMU exited ${stage === 'starting' ? `during ${what}` : 'unexpectedly'} (${exit.signal ?? `code ${exit.code}`})${exit.stderr ? `: ${exit.stderr}` : ''}`);
}

async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const result = await Promise.race([promise.then(() => true), timeout]);
  clearTimeout(timer);
  return result;
}
