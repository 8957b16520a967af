import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import createDebug from 'debug';
import type { CapsuleNotes } from '../capsule/save.js';
import { asKvmtestError } from '../errors.js';
import type { Guest } from '../guest/guest.js';
import type { CapsuleWhen, CellAttempt, CellResult } from './types.js';

const debug = createDebug('kvmtest:matrix');

/** Whether an attempt that ended so is saved. Pure. */
export function wantsCapsule(when: CapsuleWhen, status: CellAttempt['status']): boolean {
  return when === 'always' || (when === 'on-failure' && status !== 'passed');
}

/**
 * Saves a cell's guest whole into <cellDir>/capsule (an older one there goes first); the guest is
 * disposed either way. Never throws: what went wrong is the result's `error`.
 */
export async function saveCellCapsule(vm: Guest, cellDir: string, notes: Omit<CapsuleNotes, 'hostname'>, signal: AbortSignal | undefined): Promise<NonNullable<CellResult['capsule']>> {
  if (vm.state !== 'running') {
    await vm.dispose();
    return { error: `no capsule: the guest had already ${vm.state === 'failed' ? 'failed' : 'stopped'}` };
  }
  const dir = join(cellDir, 'capsule');
  try {
    await rm(dir, { recursive: true, force: true });
    const info = await vm.saveCapsule(dir, { notes, ...(signal ? { signal } : {}) });
    return { dir, bytes: info.bytes, tookMs: Math.round(info.tookMs) };
  } catch (caught) {
    const error = asKvmtestError(caught).message;
    debug('%s: no capsule: %s', notes.cell?.id, error);
    return { error };
  }
}
