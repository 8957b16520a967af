import { constants } from 'node:os';
import { boot } from '../guest/boot.js';
import type { Guest } from '../guest/guest.js';
import type { BootOptions } from '../guest/options.js';
import { commandFence, underGithubActions } from '../util/stop-commands.js';
import { onInterrupt } from './interrupt.js';
import { parseCopySpec, parseEnv, relay } from './run.js';

export interface ShellCommandOptions extends BootOptions {
  push: string[];
  env: string[];
  cwd?: string;
}

/** The guest's login shell: bash where there is one, else sh. */
const LOGIN_SHELL = ['/bin/sh', '-c', 'if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi'];

/**
 * kvmtest shell: boots a guest and opens a terminal in it. The command (default a login shell) runs
 * on a pty in the guest; this terminal goes raw, so every key (Ctrl-C too) reaches the guest's
 * foreground process, and window-size changes follow. Exits with the command's status; the guest goes.
 */
export async function shellCommand(command: string[], options: ShellCommandOptions): Promise<number> {
  const pushes = options.push.map((p) => parseCopySpec(p, '--push'));
  const env = parseEnv(options.env);
  const { push: _push, env: _env, cwd, ...bootOptions } = options;
  let vm: Guest;
  {
    // until the terminal is the guest's, Ctrl-C stops the boot
    using interrupt = onInterrupt();
    vm = await boot({ ...bootOptions, progress: true, signal: interrupt.signal });
  }
  try {
    for (const { source, dest } of pushes) await vm.push(source, dest);
    return await openTerminal(vm, command, { env, ...(cwd ? { cwd } : {}) });
  } finally {
    await vm.dispose();
  }
}

/**
 * The guest's terminal on ours: the command (default a login shell) on a pty in the guest, this
 * terminal raw (every key, Ctrl-C too, reaches the guest's foreground process), window-size changes
 * followed. Resolves to the exit status to exit with. Used by shell and repro.
 */
export async function openTerminal(vm: Guest, command: string[], options: { env?: Record<string, string>; cwd?: string } = {}): Promise<number> {
  const stdin = process.stdin;
  const stdout = process.stdout;
  const size = () => ({ rows: stdout.rows || 24, cols: stdout.columns || 80 });
  const child = vm.spawn(command.length > 0 ? command : LOGIN_SHELL, [], { tty: size(), ...(options.env ? { env: options.env } : {}), ...(options.cwd ? { cwd: options.cwd } : {}), buffer: false });
  const raw = stdin.isTTY === true;
  if (raw) stdin.setRawMode(true);
  const onResize = () => child.resize(size());
  stdout.on('resize', onResize);
  stdin.pipe(child.stdin);
  // a terminal's bytes are the guest's: under GitHub Actions (a shell or repro run by a workflow) fenced
  const copy = relay(child.stdout, stdout, underGithubActions() ? commandFence() : undefined);
  try {
    const result = await child;
    await copy;
    if (result.signal) return 128 + (constants.signals[result.signal] ?? 0);
    return result.exitCode ?? 1;
  } finally {
    stdout.off('resize', onResize);
    stdin.unpipe(child.stdin);
    if (raw) stdin.setRawMode(false);
    stdin.pause();
  }
}
