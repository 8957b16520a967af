import createDebug from 'debug';
import { execa } from 'execa';

const debug = createDebug('kvmtest:sandbox');

/** What the sandbox denies: old syscalls, setuid and friends, fork/exec, scheduling and limits. */
export const SANDBOX_ARG = 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny';

export interface SandboxVerdict {
  supported: boolean;
  /** Why not, in QEMU's words (its first stderr line). */
  reason?: string;
}

const verdicts = new Map<string, Promise<SandboxVerdict>>();

/**
 * Whether this QEMU starts with the seccomp sandbox kvmtest asks for: a build without seccomp, or a
 * kernel without it, refuses `-sandbox`. Probed once per binary and process (~50 ms): an empty
 * machine, paused, told to quit over QMP on stdin.
 */
export function probeSandbox(qemu: string): Promise<SandboxVerdict> {
  let verdict = verdicts.get(qemu);
  if (!verdict) {
    verdict = probe(qemu);
    verdicts.set(qemu, verdict);
  }
  return verdict;
}

async function probe(qemu: string): Promise<SandboxVerdict> {
  const result = await execa(qemu, ['-sandbox', SANDBOX_ARG, '-machine', 'none', '-nodefaults', '-no-user-config', '-display', 'none', '-S', '-qmp', 'stdio'], {
    input: '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n',
    reject: false,
    timeout: 10_000,
  });
  const verdict: SandboxVerdict =
    result.exitCode === 0
      ? { supported: true }
      : { supported: false, reason: result.stderr.trim().split('\n')[0] || (result.timedOut ? 'the probe timed out' : `exit ${result.exitCode ?? result.signal}`) };
  debug('%s: %o', qemu, verdict);
  return verdict;
}
