/**
 * Failure capsules on real guests: a matrix under CI whose one cell fails after writing a file and
 * starting a background process, and whose other hangs past its timeout. Each cell's machine is saved
 * before it goes; the HTML report (in headless Chromium) shows the cells and their capsules; `kvmtest
 * repro` in a separate process restores each exact moment (the file, the still-running processes);
 * damaged capsules, a missing base and a QEMU that lacks the machine type each get their coded error,
 * and --cold boots the capsule's disk instead.
 */

import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CapsuleManifest } from '../../src/capsule/manifest.js';
import { boot } from '../../src/guest/boot.js';
import type { CellResult, MatrixReport } from '../../src/matrix/types.js';
import { launchChromium } from '../browser/chromium.js';
import { guestDirs, sha256File } from './helpers.js';

const cli = join(__dirname, '../../dist/cli/main.js');
const work = mkdtempSync(join(tmpdir(), 'kvmtest-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const out = join(work, 'out');
const RUN = [
  'case "$KVMTEST_MODE" in',
  // the failing moment: a file written, a process left running, a message on stderr
  'fail) echo "evidence of $KVMTEST_CELL" > /root/evidence; setsid sleep 10000 </dev/null >/dev/null 2>&1 & echo "the check failed: see /root/evidence" >&2; exit 3;;',
  // the hung moment: the run never ends; the capsule holds it running
  'hang) echo hung > /root/hang-marker; exec sleep 600;;',
  'esac',
].join('\n');

let report: MatrixReport;
let stderr: string;
const cellOf = (mode: string): CellResult => report.cells.find((c) => c.id === `debian-12/mode=${mode}`)!;
const capsuleOf = (mode: string): string => {
  const capsule = cellOf(mode).capsule;
  if (!capsule || 'error' in capsule) throw new Error(`no capsule for ${mode}: ${JSON.stringify(capsule)}`);
  return capsule.dir;
};
const repro = (args: string[], env: Record<string, string> = {}) => execa('node', [cli, 'repro', ...args], { reject: false, env: { CI: 'true', ...env } });

beforeAll(async () => {
  // the cells' warm snapshot (a named CPU model: capsules are on under CI) is made here, so the
  // cells' timeout measures the run, not the first cold boot
  const warm = await boot({ image: 'debian-12', snapshot: true, cpu: 'Nehalem' });
  await warm.dispose();
  // node: 'host': each cell has the toolchain disk mounted, which its capsule must carry
  const result = await execa(
    'node',
    [cli, 'matrix', '--image', 'debian-12', '--vary', 'mode=fail,hang', '--node', 'host', '--timeout', '45s', '--out', out, '--reporter', 'html', '--', 'sh', '-c', RUN],
    {
      reject: false,
      env: { CI: 'true' },
    },
  );
  stderr = result.stderr;
  expect(result.exitCode, stderr).toBe(1);
  report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as MatrixReport;
});

describe('failure capsules', () => {
  it('under CI a failing and a timed-out cell each leave a capsule, its size printed, linked from the HTML report', async () => {
    expect(cellOf('fail')).toMatchObject({ status: 'failed', exitCode: 3 });
    expect(cellOf('hang')).toMatchObject({ status: 'timeout', error: { code: 'CELL_TIMEOUT' } });
    for (const mode of ['fail', 'hang']) {
      const dir = capsuleOf(mode);
      expect(dir).toBe(join(out, 'cells', `debian-12_mode=${mode}`, 'capsule'));
      const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as CapsuleManifest;
      expect(manifest).toMatchObject({
        cell: { id: `debian-12/mode=${mode}`, status: mode === 'fail' ? 'failed' : 'timeout', attempt: 1 },
        command: ['sh', '-c', RUN],
        // the env's names only: a value may be a secret (--capsule-env keeps them)
        envNames: expect.arrayContaining(['KVMTEST_MODE', 'KVMTEST_CELL']),
        machine: { arch: 'x86_64', type: 'pc-q35-7.2', cpu: 'Nehalem', cpus: 2, memoryMiB: 1024 },
        base: { name: 'debian-12' },
      });
      expect(manifest.env).toBeUndefined();
      expect(manifest.durations?.run).toBeGreaterThan(0);
      // the mounted toolchain disk travels in the capsule, compressed
      expect(manifest.attached).toEqual([{ target: 1, bytes: expect.any(Number), sha256: expect.stringMatching(/^[0-9a-f]{64}$/) }]);
      expect(existsSync(join(dir, 'attach-1.qcow2'))).toBe(true);
      // the whole RAM went in, compressed: the capsule is far smaller than the guest's memory
      expect(manifest.stateBytes).toBeGreaterThan(50 * 2 ** 20);
      expect(manifest.files.state.bytes).toBeLessThan(manifest.stateBytes);
    }
    expect(stderr).toMatch(new RegExp(`capsule: ${capsuleOf('fail').replaceAll('/', '\\/')} \\(\\d+\\.\\d MiB, [\\d.]+s\\) · kvmtest repro `));
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(pathToFileURL(join(out, 'index.html')).href);
      const grid = await page.locator('table.grid td[data-status]').evaluateAll((tds) => tds.map((td) => `${td.getAttribute('data-cell')} ${td.getAttribute('data-status')}`));
      expect(grid).toEqual(['debian-12/mode=fail failed', 'debian-12/mode=hang timeout']);
      const failed = page.locator('section[data-status="failed"]');
      expect(await failed.locator('pre', { hasText: 'the check failed: see /root/evidence' }).count()).toBe(1);
      const capsule = failed.locator('[data-testid="capsule"]');
      await expect(capsule.textContent()).resolves.toMatch(/MiB, saved in .*kvmtest repro cells\/debian-12_mode=fail\/capsule/);
      const href = await capsule.locator('a').getAttribute('href');
      expect(href).toBe('cells/debian-12_mode%3Dfail/capsule/');
      expect(existsSync(join(out, decodeURIComponent(href!), 'manifest.json'))).toBe(true);
    } finally {
      await browser.close();
    }
    expect(guestDirs()).toEqual([]);
  });

  it('kvmtest repro, in another process, restores the failing moment: the file, the background process, the hostname; exits with the command status', async () => {
    const dir = capsuleOf('fail');
    const before = await sha256File(join(dir, 'state.gz'));
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as CapsuleManifest;
    const result = await repro([dir, '--', 'sh', '-c', 'cat /root/evidence; pgrep -x sleep >/dev/null && echo sleeper-running; hostname; /opt/kvmtest/node/bin/node --version; exit 5']);
    expect(result.exitCode, result.stderr).toBe(5);
    // the file, the process, the hostname, and the host's node on its mounted disk, as they were
    expect(result.stdout.split('\n')).toEqual(['evidence of debian-12/mode=fail', 'sleeper-running', manifest.hostname, process.version]);
    expect(result.stderr).toMatch(/capsule of debian-12\/mode=fail \(failed, attempt 1\).*restored as it was/);
    // the capsule is only read
    expect(await sha256File(join(dir, 'state.gz'))).toBe(before);
    expect(guestDirs()).toEqual([]);
  });

  it('kvmtest repro of the timed-out cell finds its run still running; under GitHub Actions its output is fenced', async () => {
    const result = await repro([capsuleOf('hang'), '--', 'sh', '-c', 'cat /root/hang-marker; pgrep -f "sleep 600" >/dev/null && echo still-hung; echo "::error::from the capsule"'], {
      GITHUB_ACTIONS: 'true',
    });
    expect(result.exitCode, result.stderr).toBe(0);
    const lines = result.stdout.split('\n');
    const token = /^::stop-commands::(kvmtest-[0-9a-f]{32})$/.exec(lines[0] ?? '')?.[1];
    expect(token, result.stdout).toBeDefined();
    expect(lines.slice(1)).toEqual(['hung', 'still-hung', '::error::from the capsule', `::${token}::`]);
  });

  it('a damaged capsule, a missing base, another base and a QEMU without the machine type each get a coded error, before any guest', async () => {
    const copy = (name: string) => {
      const dir = join(work, name);
      cpSync(capsuleOf('fail'), dir, { recursive: true });
      return dir;
    };
    const editManifest = (dir: string, edit: (m: CapsuleManifest) => void) => {
      const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as CapsuleManifest;
      edit(manifest);
      writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
    };
    // one byte of the RAM changed (a flaky artifact download)
    const flipped = copy('flipped');
    const state = readFileSync(join(flipped, 'state.gz'));
    state[4096] = state[4096]! ^ 0xff;
    writeFileSync(join(flipped, 'state.gz'), state);
    let result = await repro([flipped, '--', 'true']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/state\.gz is not the file the manifest names .*\[CAPSULE_DAMAGED\]/);
    // cut short
    const cut = copy('cut');
    writeFileSync(join(cut, 'disk.qcow2'), readFileSync(join(cut, 'disk.qcow2')).subarray(0, 65536));
    result = await repro([cut, '--', 'true']);
    expect(result.stderr).toMatch(/disk\.qcow2 is 65536 bytes, the manifest says \d+ .*\[CAPSULE_DAMAGED\]/);
    // a manifest planted as a link is not followed
    const linked = join(work, 'linked');
    cpSync(capsuleOf('fail'), linked, { recursive: true });
    rmSync(join(linked, 'manifest.json'));
    symlinkSync(join(capsuleOf('fail'), 'manifest.json'), join(linked, 'manifest.json'));
    result = await repro([linked, '--', 'true']);
    expect(result.stderr).toMatch(/manifest\.json is a symbolic link \[CAPSULE_DAMAGED\]/);
    // a base named by a path (a capsule of a local image, or a hostile one): never opened, --base asked for
    const elsewhere = copy('elsewhere');
    editManifest(elsewhere, (m) => {
      m.base.name = join(work, 'gone', 'base.qcow2');
    });
    result = await repro([elsewhere, '--', 'true']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/names its base by a name that is not a catalog or recipe name .*gone\/base\.qcow2.*--base FILE \[CAPSULE_BASE_MISSING\]/);
    // a base with other content, named with --base
    const other = join(work, 'other.qcow2');
    await execa('qemu-img', ['create', '-q', '-f', 'qcow2', other, '64M']);
    result = await repro([capsuleOf('fail'), '--base', other, '--', 'true']);
    expect(result.stderr).toMatch(/other\.qcow2 here has other content.*\[CAPSULE_BASE_MISSING\]/);
    // and the digest of a host file is not printed (no oracle for what a file holds)
    expect(result.stderr).not.toContain(await sha256File(other));
    // saved on a machine type this QEMU does not have: said before QEMU starts, with the cold boot offered
    const newer = copy('newer');
    editManifest(newer, (m) => {
      m.machine.type = 'pc-q35-99.0';
    });
    result = await repro([newer, '--', 'true']);
    expect(result.stderr).toMatch(/machine type pc-q35-99\.0 is not one this QEMU .*kvmtest repro --cold .*\[CAPSULE_INCOMPATIBLE\]/);
    expect(guestDirs()).toEqual([]);
  });

  it('kvmtest repro --cold boots the capsule disk afresh: the file is there (synced before the save), the process is not', async () => {
    const result = await repro(['--cold', capsuleOf('fail'), '--', 'sh', '-c', 'cat /root/evidence; pgrep -x sleep || echo no-sleeper']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout.split('\n')).toEqual(['evidence of debian-12/mode=fail', 'no-sleeper']);
    expect(result.stderr).toMatch(/its disk booted afresh/);
    expect(guestDirs()).toEqual([]);
  });
});
