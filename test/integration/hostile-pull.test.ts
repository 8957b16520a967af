/**
 * A hostile guest against pulls and matrix collects (issue 10, items 1 and 8). A script in the
 * guest plays the attacker: a symbolic-link chain through a link to `.` that reads as harmless but
 * climbs to a host directory once resolved, a setuid file, a fifo, a huge sparse file; then a
 * matrix collects a path beneath the chain, and a retried cell leaves a result file per attempt.
 * What must hold: the host directory outside the destination receives nothing, dangerous members
 * are dropped and reported (the pull does not fail for them), modes are clamped, caps hold with a
 * coded error and leave nothing, each attempt is judged on its own files, and the report is made.
 */
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boot, type Guest } from '../../src/index.js';
import { runMatrix } from '../../src/matrix/run.js';
import { toJUnit } from '../../src/report/junit.js';
import { guestDirs } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'kvmtest-test-'));
/** A host directory the guest aims at: it must stay empty. */
const victim = join(work, 'victim');
mkdirSync(victim);
let vm: Guest;

/** Lexically `victim` under the link's directory; physically (l1 is `.`) thirty levels up, i.e. `/`, then the victim. */
const climb = `${'l1/'.repeat(30)}${'../'.repeat(30)}${victim.slice(1)}`;

/** The attacker's tree at `dir`; with `absolute`, also a plain absolute link. */
function hostileTree(dir: string, absolute: boolean): string {
  return [
    'set -e',
    `rm -rf ${dir} && mkdir -p ${dir} && cd ${dir}`,
    'ln -s . l1',
    `ln -s '${climb}' b`,
    'ln -s l1 in',
    absolute ? 'ln -s /etc/passwd abs' : 'true',
    'echo inside > x',
    // in the guest the chain leads to the guest's own copy of the victim path: give it a file to pull
    `mkdir -p '${victim}' && echo from-the-guest > '${victim}/c'`,
    'cp /bin/true suid && chmod 6755 suid',
    'mkfifo fifo',
  ].join('\n');
}

beforeAll(async () => {
  vm = await boot({ image: 'debian-12', boot: 'kernel', snapshot: true });
});
afterAll(async () => {
  await vm?.dispose();
  rmSync(work, { recursive: true, force: true });
});

describe('vm.pull of a hostile tree', () => {
  it('links that climb out (through a link to `.`) or are absolute are dropped and reported; setuid is cleared; the fifo never arrives', async () => {
    await vm.exec(['sh', '-c', hostileTree('/hostile/a', true)]);
    expect((await vm.exec(['stat', '-c', '%a', '/hostile/a/suid'])).stdout.trim()).toBe('6755');
    const dest = join(work, 'pulled');
    const result = await vm.pull('/hostile/a', dest);
    expect(result.dropped.map((d) => d.path).sort()).toEqual(['abs', 'b']);
    expect(result.dropped.find((d) => d.path === 'b')!.reason).toMatch(/resolves outside the destination/);
    expect(readlinkSync(join(dest, 'l1'))).toBe('.');
    expect(readlinkSync(join(dest, 'in'))).toBe('l1');
    expect(readFileSync(join(dest, 'in/x'), 'utf8')).toBe('inside\n');
    expect(lstatSync(join(dest, 'suid')).mode & 0o7777).toBe(0o755);
    expect(readdirSync(dest).sort()).toEqual(['in', 'l1', 'suid', 'x']);
    expect(readdirSync(victim)).toEqual([]);
  });

  it('a pull to a path beneath a link an earlier pull brought is refused (PULL_DEST_SYMLINK), and nothing lands', async () => {
    const error = await vm.pull('/hostile/a/x', join(work, 'pulled/in/again')).catch((e) => e);
    expect(error).toMatchObject({ code: 'PULL_DEST_SYMLINK' });
    expect(readdirSync(join(work, 'pulled')).sort()).toEqual(['in', 'l1', 'suid', 'x']);
    expect(readdirSync(victim)).toEqual([]);
  });
});

describe('a matrix that collects beneath the chain, and retries', () => {
  it('collecting /m/a then /m/a/b/c and /m/a/in/x writes nothing outside the cell directory; the report says what was dropped and refused', async () => {
    const out = join(work, 'matrix-links');
    const report = await runMatrix({
      capsule: 'never',
      images: ['debian-12'],
      run: hostileTree('/m/a', false),
      collect: ['/m/a', '/m/a/b/c', '/m/a/in/x'],
      concurrency: 1,
      outDir: out,
    });
    expect(readdirSync(victim)).toEqual([]);
    const [cell] = report.cells;
    expect(cell!.status).toBe('passed');
    const files = join(out, 'cells/debian-12/attempt-1/files');
    expect(cell!.collected).toEqual([
      { path: '/m/a', host: join(files, 'm/a'), cases: 0, dropped: [{ path: 'b', reason: expect.stringMatching(/resolves outside the destination/) }] },
      // the guest's b/c is its own file; on the host b is no link any more, so it lands in a real directory
      { path: '/m/a/b/c', host: join(files, 'm/a/b/c'), cases: 0 },
      { path: '/m/a/in/x', error: expect.stringMatching(/symbolic link/) },
    ]);
    expect(lstatSync(join(files, 'm/a/b')).isDirectory()).toBe(true);
    expect(readFileSync(join(files, 'm/a/b/c'), 'utf8')).toBe('from-the-guest\n');
    expect(existsSync(join(out, 'cells/debian-12/attempt-1/console.log'))).toBe(true);
    expect(toJUnit(report)).toMatch(/collect\.error/);
    // the matrix's guests are gone; only this file's own guest remains
    expect(guestDirs().filter((name) => !vm.info.dir.endsWith(name))).toEqual([]);
  });

  it('a retry is judged on its own files: the failed first attempt’s results are not counted again', async () => {
    const out = join(work, 'matrix-retry');
    const report = await runMatrix({
      capsule: 'never',
      images: ['debian-12'],
      // each attempt leaves its own result file; the first fails, the second passes
      run: [
        'mkdir -p /work/r',
        'if [ "$KVMTEST_ATTEMPT" = 1 ]; then echo \'<testsuite name="s"><testcase name="attempt 1"><failure message="no"/></testcase></testsuite>\' > /work/r/a1.xml; exit 1; fi',
        'echo \'<testsuite name="s"><testcase name="attempt 2"/></testsuite>\' > /work/r/a2.xml',
      ].join('\n'),
      collect: ['/work/r'],
      retries: 1,
      concurrency: 1,
      outDir: out,
    });
    const [cell] = report.cells;
    expect(cell!.status).toBe('flaky');
    expect(cell!.cases.map((c) => `${c.status} ${c.name}`)).toEqual(['passed attempt 2']);
    expect(report.totals.cases).toMatchObject({ total: 1, passed: 1, failed: 0 });
    expect(cell!.outDir).toBe(join(out, 'cells/debian-12/attempt-2'));
    expect(cell!.collected).toEqual([{ path: '/work/r', host: join(out, 'cells/debian-12/attempt-2/files/work/r'), cases: 1 }]);
    // the first attempt's files stay where it left them, apart
    expect(readdirSync(join(out, 'cells/debian-12/attempt-1/files/work/r'))).toEqual(['a1.xml']);
  });
});

describe('caps', () => {
  // last in the file: the agent has no cancel for a pull, so it streams the refused file on until the guest is disposed
  it('an 8 GiB sparse file is refused by maxBytes and by the 4 GiB default, before any of it is written; nothing is left', async () => {
    await vm.exec(['sh', '-c', 'rm -rf /sparse && mkdir /sparse && truncate -s 8G /sparse/big && echo small > /sparse/a']);
    const parent = join(work, 'caps');
    mkdirSync(parent);
    const rssBefore = process.memoryUsage.rss();
    await expect(vm.pull('/sparse', join(parent, 'dir'), { maxBytes: 1024 * 1024 })).rejects.toMatchObject({ code: 'PULL_TOO_LARGE', message: expect.stringMatching(/maxBytes/) });
    await expect(vm.pull('/sparse/big', join(parent, 'file'))).rejects.toMatchObject({ code: 'PULL_TOO_LARGE' });
    expect(readdirSync(parent)).toEqual([]);
    console.log(`8 GiB sparse pull refused; host RSS ${(rssBefore / 2 ** 20).toFixed(0)} → ${(process.memoryUsage.rss() / 2 ** 20).toFixed(0)} MiB`);
  });
});
