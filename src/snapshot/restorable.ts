import { kvmtestError } from '../errors.js';
import { qemuVersion } from '../host/tools.js';
import type { MachinePlan } from '../machine/plan.js';
import { restoreBlocker } from '../qemu/arch.js';

/**
 * Refuses to save a machine this QEMU could not restore (qemu/arch.ts restoreBlocker: riscv64 on
 * QEMU 7.2) with the caller's code, before anything is started or paused.
 */
export async function checkRestorable(plan: Pick<MachinePlan, 'opts' | 'tools'>, code: 'SNAPSHOT_FAILED' | 'CAPSULE_FAILED'): Promise<void> {
  const blocker = restoreBlocker(plan.opts.arch, await qemuVersion(plan.tools.qemu));
  if (blocker) throw kvmtestError(code, blocker);
}
