import { rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import createDebug from 'debug';
import { type CapsuleNotes, capsuleWorstCase } from '../capsule/save.js';
import { asKvmtestError } from '../errors.js';
import { type Guest, machineOf } from '../guest/guest.js';
import { formatTransfer } from '../util/progress.js';
import type { ResolvedMatrixOptions } from './options.js';
import type { CapsuleWhen, CellAttempt, CellResult } from './types.js';

const debug = createDebug('kvmtest:matrix');

/** Whether an attempt that ended so is saved. Pure. */
export function wantsCapsule(when: CapsuleWhen, status: CellAttempt['status']): boolean {
  return when === 'always' || (when === 'on-failure' && status !== 'passed');
}

/** What the decision to save one more capsule weighs, in bytes. */
export interface CapsuleRoom {
  /** Free for an unprivileged writer on the filesystem the capsule goes to. */
  freeBytes: number;
  /** What this run's capsules hold, and the worst cases of those being saved now. */
  usedBytes: number;
  /** Of `usedBytes`, the worst cases of saves in flight (not yet written, so not yet out of `freeBytes`). */
  pendingBytes: number;
  /** What this run's capsules may take together. */
  budgetBytes: number;
  /** The most this capsule may take. */
  worstCaseBytes: number;
}

/** Save, or say why not (the cell's result carries the reason). Pure. */
export function decideCapsule(room: CapsuleRoom): { save: true } | { save: false; reason: string } {
  const size = (bytes: number) => formatTransfer(bytes);
  if (room.usedBytes + room.worstCaseBytes > room.budgetBytes) {
    return {
      save: false,
      reason: `no capsule: it may take up to ${size(room.worstCaseBytes)}, and this run's capsules already take ${size(room.usedBytes)} of their ${size(room.budgetBytes)} budget (capsuleBudget, --capsule-budget)`,
    };
  }
  if (room.freeBytes - room.pendingBytes < room.worstCaseBytes) {
    const pending = room.pendingBytes > 0 ? ` (${size(room.pendingBytes)} of it promised to capsules being saved)` : '';
    return { save: false, reason: `no capsule: it may take up to ${size(room.worstCaseBytes)}, and the output filesystem has ${size(room.freeBytes)} free${pending}` };
  }
  return { save: true };
}

/** What one run's capsules take: each capsule directory's size, or its worst case while it is saved. */
export class CapsuleLedger {
  private readonly held = new Map<string, { bytes: number; pending: boolean }>();
  constructor(readonly budgetBytes: number) {}

  get usedBytes(): number {
    return this.sum(() => true);
  }

  get pendingBytes(): number {
    return this.sum((entry) => entry.pending);
  }

  /** A save starts: its worst case is counted until it ends. */
  reserve(dir: string, worstCaseBytes: number): void {
    this.held.set(dir, { bytes: worstCaseBytes, pending: true });
  }

  /** A save ended: its real size from now on. */
  settle(dir: string, bytes: number): void {
    this.held.set(dir, { bytes, pending: false });
  }

  /** A capsule removed (or never written). */
  release(dir: string): void {
    this.held.delete(dir);
  }

  private sum(which: (entry: { bytes: number; pending: boolean }) => boolean): number {
    let total = 0;
    for (const entry of this.held.values()) if (which(entry)) total += entry.bytes;
    return total;
  }
}

/** The run's side of a capsule: whether the env keeps its values, and the budget all its capsules share. */
export type CapsuleRun = Pick<ResolvedMatrixOptions, 'capsuleEnv' | 'capsuleBudgetMiB'>;

/** One ledger per run: runMatrix resolves its options once, so the resolved object stands for the run. */
const ledgers = new WeakMap<CapsuleRun, CapsuleLedger>();

export function ledgerOf(run: CapsuleRun): CapsuleLedger {
  let ledger = ledgers.get(run);
  if (!ledger) ledgers.set(run, (ledger = new CapsuleLedger(run.capsuleBudgetMiB * 2 ** 20)));
  return ledger;
}

/**
 * Saves a cell's guest whole into <cellDir>/capsule (an older one there goes first) if its worst
 * case fits in the output filesystem's free space and in the run's capsule budget; the guest is
 * disposed either way. Never throws: why there is no capsule is the result's `error`. Without `run`,
 * the env's values stay out and only free space is checked.
 */
export async function saveCellCapsule(
  vm: Guest,
  cellDir: string,
  notes: Omit<CapsuleNotes, 'hostname'>,
  signal: AbortSignal | undefined,
  run?: CapsuleRun,
): Promise<NonNullable<CellResult['capsule']>> {
  if (vm.state !== 'running') {
    await vm.dispose();
    return { error: `no capsule: the guest had already ${vm.state === 'failed' ? 'failed' : 'stopped'}` };
  }
  const dir = join(cellDir, 'capsule');
  const ledger = run ? ledgerOf(run) : undefined;
  try {
    await rm(dir, { recursive: true, force: true });
    ledger?.release(dir);
    const worstCaseBytes = await capsuleWorstCase(machineOf(vm));
    const fs = await statfs(cellDir);
    // from here to the reservation nothing awaits: saves deciding at once see each other's
    const decision = decideCapsule({
      freeBytes: fs.bavail * fs.bsize,
      usedBytes: ledger?.usedBytes ?? 0,
      pendingBytes: ledger?.pendingBytes ?? 0,
      budgetBytes: ledger?.budgetBytes ?? Number.POSITIVE_INFINITY,
      worstCaseBytes,
    });
    if (!decision.save) {
      debug('%s: %s', notes.cell?.id, decision.reason);
      await vm.dispose();
      return { error: decision.reason };
    }
    ledger?.reserve(dir, worstCaseBytes);
    const info = await vm.saveCapsule(dir, { notes: { ...notes, envValues: run?.capsuleEnv === true }, ...(signal ? { signal } : {}) });
    ledger?.settle(dir, info.bytes);
    return { dir, bytes: info.bytes, tookMs: Math.round(info.tookMs) };
  } catch (caught) {
    ledger?.release(dir);
    await vm.dispose().catch(() => {});
    const error = asKvmtestError(caught).message;
    debug('%s: no capsule: %s', notes.cell?.id, error);
    return { error };
  }
}
