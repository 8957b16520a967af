/** The CLI as a user runs it: the built dist/cli/main.js, a real guest, real exit codes. */

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { guestDirs } from './helpers.js';

const cli = join(__dirname, '../../dist/cli/main.js');
const work = mkdtempSync(join(tmpdir(), 'kvmtest-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('kvmtest CLI', () => {
  it("doctor explains this host's acceleration", async () => {
    const { stdout, exitCode } = await execa('node', [cli, 'doctor'], { reject: false });
    expect(exitCode).toBe(0);
    expect(stdout).toMatch(/qemu-system-x86_64 .*QEMU \d+\.\d+/);
    expect(stdout).toMatch(/acceleration\s+(KVM: \/dev\/kvm opens read-write and the CPU advertises (vmx|svm)|TCG \(software emulation.*KVM not usable: .+)/);
  });

  it("run boots, pushes, streams output, pulls, and exits with the command's status", async () => {
    mkdirSync(join(work, 'in'));
    writeFileSync(join(work, 'in/check.sh'), 'uname -a\necho result > /work/result.txt\nexit 7\n');
    const result = await execa(
      'node',
      [
        cli,
        'run',
        '--image',
        'debian-12',
        '--boot',
        'kernel',
        '--snapshot',
        '--push',
        `${join(work, 'in')}:/work`,
        '--pull',
        `/work/result.txt:${join(work, 'out/result.txt')}`,
        '--',
        'sh',
        '/work/check.sh',
      ],
      { reject: false, env: { CI: 'true' } },
    );
    expect(result.stdout).toMatch(/^Linux kvmtest-\w+ 6\.1\./m);
    expect(result.exitCode).toBe(7);
    expect(readFileSync(join(work, 'out/result.txt'), 'utf8')).toBe('result\n');
    // progress went to stderr as plain lines (CI), ending in the guest's OS
    expect(result.stderr).toMatch(/Debian GNU\/Linux 12 \(bookworm\) (restored|up)/);
    expect(guestDirs()).toEqual([]);
  });

  it('run --setup runs the setup once (progress names it) and the second run restores after it', async () => {
    mkdirSync(join(work, 'setup-in'));
    writeFileSync(join(work, 'setup-in/tool.sh'), `echo tool-${Date.now()}\n`);
    const run = () =>
      execa(
        'node',
        [
          cli,
          'run',
          '--image',
          'debian-12',
          '--boot',
          'kernel',
          '--setup-push',
          `${join(work, 'setup-in')}:/opt/tools`,
          '--setup',
          'sh /opt/tools/tool.sh > /opt/made; date +%s%N >> /opt/made',
          '--',
          'cat',
          '/opt/made',
        ],
        {
          reject: false,
          env: { CI: 'true' },
        },
      );
    const first = await run();
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/setup: running sh \/opt\/tools\/tool\.sh/);
    const second = await run();
    expect(second.exitCode, second.stderr).toBe(0);
    expect(second.stdout).toBe(first.stdout); // the stamp the setup wrote: it did not run again
    expect(second.stderr).not.toMatch(/setup: running/);
    expect(guestDirs()).toEqual([]);
  });

  it('run with a bad image exits non-zero with the error code', async () => {
    const result = await execa('node', [cli, 'run', '--image', join(work, 'nope.qcow2'), '--', 'true'], { reject: false });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/IMAGE_NOT_FOUND/);
  });
});
