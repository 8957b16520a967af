/**
 * `kvmtest run` under GitHub Actions, with a guest that prints workflow commands: its raw output is
 * fenced with ::stop-commands::<random token> … ::<token>::, so the runner executes none of them.
 */

import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

const cli = join(__dirname, '../../dist/cli/main.js');

/** The workflow commands GitHub's runner would execute from one stream, honouring stop-commands. */
function commandsRun(stream: string): string[] {
  const run: string[] = [];
  let stopToken: string | undefined;
  for (const line of stream.split(/\r?\n/)) {
    const text = line.trimStart();
    if (stopToken !== undefined) {
      if (text === `::${stopToken}::`) {
        run.push('resume');
        stopToken = undefined;
      }
      continue;
    }
    const command = /^::([a-zA-Z-]+)(?: [^:]*)?::(.*)$/.exec(text);
    if (!command) continue;
    run.push(command[1]!);
    if (command[1] === 'stop-commands') stopToken = command[2];
  }
  return run;
}

describe('kvmtest run under GitHub Actions', () => {
  it("fences the guest's raw stdout and stderr: its ::error:: and ::add-mask:: lines run nothing", async () => {
    const script = [
      'printf "::error::pwned\\n  ::set-env name=X::y\\n"',
      'printf "::warning::from stderr\\n##[group]hidden\\n" >&2',
      // a stop-commands of its own, and output ending mid-line
      'printf "::stop-commands::guess\\n::guess::\\n::add-mask::secret\\nno newline"',
    ].join('; ');
    const result = await execa('node', [cli, 'run', '--image', 'debian-12', '--boot', 'kernel', '--snapshot', '--', 'sh', '-c', script], {
      reject: false,
      env: { CI: 'true', GITHUB_ACTIONS: 'true' },
    });
    expect(result.exitCode, result.stderr).toBe(0);
    // the guest's bytes are all there, unchanged, between our lines
    expect(result.stdout).toContain('::error::pwned\n  ::set-env name=X::y\n::stop-commands::guess\n::guess::\n::add-mask::secret\nno newline');
    expect(result.stderr).toContain('::warning::from stderr\n##[group]hidden\n');
    const token = /^::stop-commands::(kvmtest-[0-9a-f]{32})$/m.exec(result.stdout)?.[1];
    expect(token).toBeDefined();
    // only our fence is executed, on each stream
    expect(commandsRun(result.stdout)).toEqual(['stop-commands', 'resume']);
    expect(commandsRun(result.stderr)).toEqual(['stop-commands', 'resume']);
    // (execa strips the final newline)
    expect(result.stdout.endsWith(`no newline\n::${token}::`)).toBe(true);
    // progress lines (hello fields) outside the fence carry no escape sequences
    expect(result.stderr).toMatch(/Debian GNU\/Linux 12 \(bookworm\) (restored|up)/);
    expect(result.stderr).not.toMatch(/\x1b/);
  });
});
