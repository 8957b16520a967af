import { randomBytes } from 'node:crypto';

/**
 * GitHub Actions' own fence for raw output: between `::stop-commands::TOKEN` and `::TOKEN::` the
 * runner runs no workflow command, and a guest cannot end the fence without the random token.
 */
export interface CommandFence {
  /** The line that stops command processing. */
  readonly stop: string;
  /** The line that resumes it. */
  readonly resume: string;
}

export function commandFence(): CommandFence {
  const token = `kvmtest-${randomBytes(16).toString('hex')}`;
  return { stop: `::stop-commands::${token}\n`, resume: `::${token}::\n` };
}

/** True under GitHub Actions, where workflow commands in the log are run. */
export function underGithubActions(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.GITHUB_ACTIONS === 'true';
}

/**
 * Output fenced: the stop line before the first chunk, the resume line at the end (after a line
 * break when the output stopped mid-line, or the runner would not see it). Chunks pass as they are.
 */
export function fenced<T extends string | Uint8Array>(write: (chunk: T | string) => void, fence: CommandFence = commandFence()): { write(chunk: T): void; end(): void } {
  let started = false;
  let midLine = false;
  return {
    write(chunk) {
      if (chunk.length === 0) return;
      if (!started) write(fence.stop);
      started = true;
      write(chunk);
      midLine = typeof chunk === 'string' ? !chunk.endsWith('\n') : chunk[chunk.length - 1] !== 0x0a;
    },
    end() {
      if (!started) return;
      write(`${midLine ? '\n' : ''}${fence.resume}`);
      started = false;
      midLine = false;
    },
  };
}
