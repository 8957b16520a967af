/**
 * Bulk pushes by disk on a real guest restored from a snapshot: an ext2 image of the tree (or the
 * file itself) hot-plugged on the virtio-scsi controller present from boot, copied in by the agent,
 * detached. Both paths give the same tree byte for byte (odd names, @scope packages, hard links,
 * holes); a push into a full disk fails with a coded error and leaves no device attached. Read-only
 * views: Guest.mount, and node: 'host' from the cached toolchain disk in a matrix.
 */
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheDir } from '../../src/host/paths.js';
import { boot, type Guest, runMatrix } from '../../src/index.js';
import { makeOddTree } from '../fixtures/odd-tree.js';
import { TREE_DIGEST_SCRIPT, treeDigest } from '../fixtures/tree-digest.js';
import { sha256File } from './helpers.js';

let vm: Guest;
let work: string;
const guestDigest = async (path: string) => (await vm.exec(['python3', '/root/tree-digest.py', path])).stdout.trim();
/** The block devices QEMU has attached beyond the guest's own disk and seed. */
const attached = async () =>
  (await vm.qmpCommand<{ device: string; qdev?: string; inserted?: { 'node-name'?: string } }[]>('query-block')).filter((b) => b.inserted?.['node-name']?.startsWith('attach-'));

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'kvmtest-it-'));
  vm = await boot({ image: 'debian-12', snapshot: true });
  await vm.push(TREE_DIGEST_SCRIPT, '/root/tree-digest.py');
});

afterAll(async () => {
  await vm?.dispose();
  rmSync(work, { recursive: true, force: true });
});

describe('push by disk', () => {
  it('a project tree with odd names, @scope packages, hard links and a hole arrives byte-exact by disk and by stream', async () => {
    const tree = makeOddTree(join(work, 'odd'));
    cpSync(join(__dirname, '../../node_modules/@vitest'), join(tree, 'node_modules/@vitest'), { recursive: true });
    const want = treeDigest(tree);
    await vm.push(tree, '/root/by-disk', { via: 'disk' });
    await vm.push(tree, '/root/by-stream', { via: 'stream' });
    expect(await guestDigest('/root/by-disk')).toBe(want);
    expect(await guestDigest('/root/by-stream')).toBe(want);
    // the copies are the guest's: root's, and the .bin link resolves
    expect((await vm.exec(['sh', '-c', 'stat -c %u:%g /root/by-disk/node_modules/@scope/alpha/cli.js; readlink -f /root/by-disk/node_modules/.bin/alpha'])).stdout).toBe(
      '0:0\n/root/by-disk/node_modules/@scope/alpha/cli.js\n',
    );
    expect(await attached()).toEqual([]);
  });

  it("'auto' sends a large file as itself on a disk (read-only, detached after), a small one by stream", async () => {
    const big = join(work, 'big.bin');
    writeFileSync(big, randomBytes(40 * 2 ** 20 + 123));
    await vm.push(big, '/root/big.bin');
    expect((await vm.exec(['sha256sum', '/root/big.bin'])).stdout.split(' ')[0]).toBe(await sha256File(big));
    expect((await vm.exec(['stat', '-c', '%s %a', '/root/big.bin'])).stdout.trim()).toBe(`${40 * 2 ** 20 + 123} 644`);
    expect(await attached()).toEqual([]);
    expect((await vm.exec(['sh', '-c', 'ls /sys/bus/scsi/devices | grep -c ":0:[0-9]*:0$" || true'])).stdout.trim()).toBe('0');
  });

  it('a push into a full disk fails with a coded error and leaves no device attached; the guest goes on', async () => {
    must(await vm.exec(['sh', '-c', 'mkdir -p /mnt/full && mount -t tmpfs -o size=1m tmpfs /mnt/full']));
    const tree = join(work, 'fat');
    makeOddTree(tree);
    writeFileSync(join(tree, 'fill.bin'), randomBytes(4 * 2 ** 20));
    await expect(vm.push(tree, '/mnt/full/x', { via: 'disk' })).rejects.toMatchObject({ code: 'GUEST_IO', message: expect.stringMatching(/ENOSPC/) });
    expect(await attached()).toEqual([]);
    // the next push attaches again (the target is free) and works
    await vm.push(join(work, 'odd'), '/root/again', { via: 'disk' });
    expect(await guestDigest('/root/again')).toBe(treeDigest(join(work, 'odd')));
  });
});

describe('read-only views', () => {
  it('Guest.mount shows a host directory read-only: the files are there, writes are refused', async () => {
    const fixtures = join(work, 'fixtures');
    makeOddTree(fixtures);
    await vm.mount(fixtures, '/fixtures');
    expect(await guestDigest('/fixtures')).toBe(treeDigest(fixtures));
    const write = await vm.exec(['sh', '-c', 'echo x > /fixtures/new']);
    expect(write.exitCode).not.toBe(0);
    expect(write.stderr).toMatch(/Read-only file system/);
  });

  it("with writable: an overlay takes the guest's writes on its own disk; the host's files never change", async () => {
    const fixtures = join(work, 'fixtures-rw');
    makeOddTree(fixtures);
    const before = treeDigest(fixtures);
    await vm.mount(fixtures, '/fixtures-rw', { writable: true });
    const r = await vm.exec([
      'sh',
      '-c',
      'echo new > /fixtures-rw/new && echo changed > "/fixtures-rw/name with spaces.txt" && rm /fixtures-rw/original && cat /fixtures-rw/new "/fixtures-rw/name with spaces.txt" && findmnt -n -o FSTYPE /fixtures-rw',
    ]);
    expect(r.stdout.split('\n').map((l) => l.trim())).toEqual(['new', 'changed', 'overlay', '']);
    expect(treeDigest(fixtures)).toBe(before);
  });

  it("a matrix with node: 'host' runs node --version in each cell from the cached toolchain disk, mounted read-only", async () => {
    const report = await runMatrix({
      capsule: 'never',
      images: ['debian-12'],
      vary: { n: [1, 2] },
      node: 'host',
      run: 'node --version && findmnt -n -o FSTYPE,OPTIONS /opt/kvmtest/node',
      concurrency: 1,
      outDir: join(work, 'node-matrix'),
    });
    for (const cell of report.cells) {
      expect(cell.status, cell.stderrTail).toBe('passed');
      const [version, mount] = cell.stdoutTail.split('\n');
      expect(version).toBe(process.version);
      expect(mount).toMatch(/^ext2\s+ro,/);
    }
    // one image per node binary, made once and kept in the cache
    expect(readdirSync(join(cacheDir(), 'toolchains')).filter((f) => f.startsWith(`node-${process.version}-`) && f.endsWith('.img'))).toHaveLength(1);
  });
});

function must(result: { exitCode: number | null; stderr: string }): void {
  if (result.exitCode !== 0) throw new Error(result.stderr);
}
