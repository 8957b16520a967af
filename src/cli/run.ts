import { once } from 'node:events';
import { constants } from 'node:os';
import type { Readable } from 'node:stream';
import { kvmtestError } from '../errors.js';
import { boot } from '../guest/boot.js';
import type { BootOptions, SetupOptions } from '../guest/options.js';
import { type CommandFence, commandFence, fenced, underGithubActions } from '../util/stop-commands.js';
import { onInterrupt } from './interrupt.js';

export interface RunCommandOptions extends Omit<BootOptions, 'setup'> {
  push: string[];
  pull: string[];
  timeout?: string;
  cwd?: string;
  env: string[];
  /** --setup: a shell command run once and cached as a layer; --setup-push: what it needs pushed first. */
  setupRun?: string;
  setupPush: string[];
}

/** --setup and --setup-push as boot()'s `setup`; --setup-push alone is a mistake. */
export function setupFromFlags(run: string | undefined, pushes: string[]): SetupOptions | undefined {
  if (run === undefined) {
    if (pushes.length > 0) throw kvmtestError('INVALID_OPTION', '--setup-push needs --setup, the command the pushed files are for');
    return undefined;
  }
  const push = Object.fromEntries(pushes.map((p) => parseCopySpec(p, '--setup-push')).map(({ source, dest }) => [source, dest]));
  return { run, ...(pushes.length > 0 ? { push } : {}) };
}

/** SRC:DEST, splitting at the last colon so host paths may contain colons. */
export function parseCopySpec(spec: string, flag: string): { source: string; dest: string } {
  const at = spec.lastIndexOf(':');
  if (at <= 0 || at === spec.length - 1) throw kvmtestError('INVALID_OPTION', `Expected ${flag} as SRC:DEST, got ${JSON.stringify(spec)}`);
  return { source: spec.slice(0, at), dest: spec.slice(at + 1) };
}

export function parseEnv(pairs: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw kvmtestError('INVALID_OPTION', `Expected --env as NAME=VALUE, got ${JSON.stringify(pair)}`);
    env[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return env;
}

/** kvmtest run: boot, push, run with live output, pull, stop. Returns the exit status to exit with. */
export async function runCommand(command: string[], options: RunCommandOptions): Promise<number> {
  if (command.length === 0) throw kvmtestError('INVALID_OPTION', 'kvmtest run needs a command after --, e.g. kvmtest run --image debian-12 -- uname -a');
  const pushes = options.push.map((p) => parseCopySpec(p, '--push'));
  const pulls = options.pull.map((p) => parseCopySpec(p, '--pull'));
  const env = parseEnv(options.env);
  const { setupRun, setupPush, push: _push, pull: _pull, env: _env, ...bootOptions } = options;
  const setup = setupFromFlags(setupRun, setupPush);
  using interrupt = onInterrupt();
  await using vm = await boot({ ...bootOptions, ...(setup ? { setup } : {}), progress: true, signal: interrupt.signal });
  for (const { source, dest } of pushes) await vm.push(source, dest);
  const child = vm.spawn(command, [], { ...(options.timeout ? { timeout: options.timeout } : {}), ...(options.cwd ? { cwd: options.cwd } : {}), env, signal: interrupt.signal, buffer: false });
  // raw output, byte for byte; under GitHub Actions fenced so the guest cannot run workflow commands
  const fence = underGithubActions() ? commandFence() : undefined;
  const copies = [relay(child.stdout, process.stdout, fence), relay(child.stderr, process.stderr, fence)];
  const result = await child;
  await Promise.all(copies);
  for (const { source, dest } of pulls) await vm.pull(source, dest);
  if (result.signal) return 128 + (constants.signals[result.signal] ?? 0);
  return result.exitCode ?? 1;
}

/** Copies a guest stream to ours as it comes; with a fence, stop and resume lines around it. */
export async function relay(from: Readable, to: NodeJS.WritableStream, fence: CommandFence | undefined): Promise<void> {
  if (!fence) {
    from.pipe(to, { end: false });
    return;
  }
  let room = true;
  const out = fenced<Buffer>((chunk) => {
    room = to.write(chunk) && room;
  }, fence);
  try {
    for await (const chunk of from) {
      out.write(chunk as Buffer);
      if (!room) await once(to, 'drain');
      room = true;
    }
  } finally {
    out.end();
  }
}
