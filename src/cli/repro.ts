import { constants } from 'node:os';
import type { CapsuleManifest } from '../capsule/manifest.js';
import type { Guest } from '../guest/guest.js';
import { reproCapsule } from '../guest/repro.js';
import type { AccelRequest } from '../host/accel.js';
import { sanitize } from '../util/sanitize.js';
import { commandFence, underGithubActions } from '../util/stop-commands.js';
import { onInterrupt } from './interrupt.js';
import { relay } from './run.js';
import { openTerminal } from './shell.js';

export interface ReproCommandOptions {
  cold?: boolean;
  base?: string;
  accel?: AccelRequest;
  trustQemuArgs?: boolean;
  network?: boolean;
}

/**
 * kvmtest repro DIR [-- CMD]: restores a failure capsule (the machine at the moment its cell ended)
 * and opens a terminal in it, or runs the command with live output and exits with its status. The
 * guest goes when the shell or command ends; the capsule stays as it was.
 */
export async function reproCommand(dir: string, command: string[], options: ReproCommandOptions): Promise<number> {
  let vm: Guest;
  let manifest: CapsuleManifest;
  {
    using interrupt = onInterrupt();
    ({ guest: vm, manifest } = await reproCapsule(dir, { ...options, progress: true, signal: interrupt.signal }));
  }
  try {
    process.stderr.write(`${describeCapsule(manifest, options.cold === true)}\n`);
    if (command.length === 0) return await openTerminal(vm, [], { ...(manifest.cwd ? { cwd: manifest.cwd } : {}) });
    using interrupt = onInterrupt();
    const child = vm.spawn(command, [], { signal: interrupt.signal, buffer: false, ...(manifest.cwd ? { cwd: manifest.cwd } : {}) });
    // the capsule's machine is as hostile as the cell that made it: under GitHub Actions its output is fenced too
    const fence = underGithubActions() ? commandFence() : undefined;
    const copies = [relay(child.stdout, process.stdout, fence), relay(child.stderr, process.stderr, fence)];
    const result = await child;
    await Promise.all(copies);
    if (result.signal) return 128 + (constants.signals[result.signal] ?? 0);
    return result.exitCode ?? 1;
  } finally {
    await vm.dispose();
  }
}

/** One line on what was restored: cell, status, when, the command that ran. Guest-given text sanitized. Pure. */
export function describeCapsule(manifest: CapsuleManifest, cold: boolean): string {
  const cell = manifest.cell ? `${manifest.cell.id} (${manifest.cell.status}, attempt ${manifest.cell.attempt})` : manifest.hostname;
  const command = manifest.command === undefined ? '' : `; it ran: ${Array.isArray(manifest.command) ? manifest.command.join(' ') : manifest.command}`;
  const what = cold ? 'its disk booted afresh (no processes)' : 'restored as it was';
  return sanitize(`capsule of ${cell}, saved ${manifest.createdAt} on QEMU ${manifest.qemu.version} (${manifest.machine.type}, ${manifest.machine.cpu}): ${what}${command}`);
}
