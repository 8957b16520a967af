import { rm } from 'node:fs/promises';
import createDebug from 'debug';
import { kvmtestError } from '../errors.js';
import type { Tracked } from '../machine/registry.js';
import type { Captured } from '../snapshot/capture.js';
import type { Guest } from './guest.js';

const debug = createDebug('kvmtest:checkpoint');

export interface CheckpointInfo {
  /** The guest that was captured. */
  from: string;
  /** How long that guest was paused. */
  pauseMs: number;
  /** How long checkpoint() took in all. */
  tookMs: number;
  /** Bytes of device state (the RAM is a file the clones map). */
  stateBytes: number;
  /** The checkpoint's private directory: RAM, device state, frozen disk layer, seed. */
  dir: string;
}

export interface CheckpointBootOptions {
  /** The clone's hostname; default its own generated name. */
  hostname?: string;
  signal?: AbortSignal;
}

/** Boots one clone of a capture; `release` runs once the clone has stopped, before its dispose() resolves. */
export type CloneStarter = (captured: Captured, options: CheckpointBootOptions, release: () => Promise<void>) => Promise<Guest>;

/**
 * A running guest captured at one moment (RAM, devices, disk). `boot()` gives a new, independent
 * guest at exactly that moment with its own overlay and identity; the captured guest runs on. The
 * files go when the checkpoint and every clone are disposed (and when this process dies: the reaper).
 */
export class Checkpoint implements AsyncDisposable {
  readonly info: CheckpointInfo;
  private clones = 0;
  private disposed = false;
  private removed: Promise<void> | undefined;

  constructor(
    private readonly captured: Captured,
    from: string,
    private readonly startClone: CloneStarter,
    private readonly tracked: Tracked,
  ) {
    this.info = { from, pauseMs: captured.pauseMs, tookMs: captured.tookMs, stateBytes: captured.stateBytes, dir: captured.dir };
  }

  /** A new guest at the checkpoint's moment: processes, files and mounts as they were, its own identity. */
  async boot(options: CheckpointBootOptions = {}): Promise<Guest> {
    if (this.disposed) throw kvmtestError('GUEST_DISPOSED', `the checkpoint of ${this.info.from} was disposed; take a new one`);
    this.clones++;
    let started = false;
    try {
      const guest = await this.startClone(this.captured, options, () => this.release());
      started = true;
      return guest;
    } finally {
      if (!started) await this.release();
    }
  }

  /** Disposes the checkpoint: its files go now, or when the last clone stops. Safe to call twice. */
  dispose(): Promise<void> {
    this.disposed = true;
    return this.clones === 0 ? this.remove() : Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  private release(): Promise<void> {
    this.clones--;
    return this.disposed && this.clones === 0 ? this.remove() : Promise.resolve();
  }

  private remove(): Promise<void> {
    this.removed ??= (async () => {
      debug('removing checkpoint %s', this.captured.dir);
      await rm(this.captured.dir, { recursive: true, force: true });
      this.tracked.untrack();
    })();
    return this.removed;
  }
}
