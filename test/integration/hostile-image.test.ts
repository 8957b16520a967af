/**
 * The base image's chain is named by kvmtest, not by the images' headers: QEMU's blockdev gives the
 * overlay its backing explicitly (the snapshot's disk, then the base, read-only) and ends the chain
 * with `backing: null`. A guest restored that way still works, and the host files QEMU holds open
 * are exactly that chain, the base read-only. (Images that name a host file are refused before any
 * boot: test/unit/image/base.test.ts.)
 */
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { boot, type Guest } from '../../src/index.js';
import { snapshotPaths } from '../../src/snapshot/store.js';

const image = inject('debian12');
let vm: Guest;

beforeAll(async () => {
  vm = await boot({ image: 'debian-12', boot: 'kernel', snapshot: true });
});
afterAll(async () => {
  await vm?.dispose();
});

/** The files a process has open: fd → target, and the access mode from fdinfo. */
function openFiles(pid: number): { target: string; access: number }[] {
  return readdirSync(`/proc/${pid}/fd`).map((fd) => {
    const flags = Number.parseInt(/^flags:\s+([0-7]+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))![1]!, 8);
    return { target: readlinkSync(`/proc/${pid}/fd/${fd}`), access: flags & 3 };
  });
}

/** QEMU's -blockdev arguments, parsed, from its command line. */
function blockdevs(pid: number): Record<string, unknown>[] {
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  return argv.filter((_, i) => argv[i - 1] === '-blockdev').map((json) => JSON.parse(json) as Record<string, unknown>);
}

describe('a base opened with no chain but the one kvmtest names', () => {
  it('the guest runs and writes its disk; the base is untouched', async () => {
    const before = statSync(image.disk).mtimeMs;
    const result = await vm.exec(['sh', '-c', 'dd if=/dev/urandom of=/var/tmp/blob bs=1M count=8 status=none && sync && sha256sum /var/tmp/blob | cut -c1-8 && echo ok']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^[0-9a-f]{8}\nok\n$/);
    expect(statSync(image.disk).mtimeMs).toBe(before);
  });

  it('QEMU is given the chain explicitly: overlay → snapshot disk → base, read-only, ended by backing: null', () => {
    const disk = blockdevs(vm.pid!).find((b) => b['node-name'] === 'disk0')!;
    expect(disk.file).toEqual({ driver: 'file', filename: join(vm.info.dir, 'disk.qcow2') });
    const snapshotDisk = disk.backing as Record<string, unknown>;
    expect(snapshotDisk).toMatchObject({ driver: 'qcow2', 'read-only': true, file: { 'read-only': true } });
    expect(snapshotDisk.backing).toEqual({ driver: 'qcow2', 'read-only': true, file: { driver: 'file', filename: image.disk, 'read-only': true }, backing: null });
  });

  it('QEMU holds the base read-only, and no disk image but the three of the chain', () => {
    const files = openFiles(vm.pid!).filter((f) => f.target.endsWith('.qcow2'));
    const overlay = join(vm.info.dir, 'disk.qcow2');
    expect(files.filter((f) => f.target === image.disk).map((f) => f.access)).toEqual([0]); // O_RDONLY
    expect(files.filter((f) => f.target === overlay).map((f) => f.access)).toEqual([2]); // O_RDWR
    const others = files.filter((f) => f.target !== image.disk && f.target !== overlay);
    expect(others.map((f) => f.target)).toEqual([expect.stringMatching(/\/snapshots\/[0-9a-f]+\/disk\.qcow2$/)]);
    expect(others[0]!.access).toBe(0);
  });

  it('the snapshot it was restored from is private: directory 0700; device state, RAM file, disk, seed and meta 0600', () => {
    const paths = snapshotPaths(vm.info.snapshot!);
    expect(statSync(paths.dir).mode & 0o777).toBe(0o700);
    for (const file of [paths.state, paths.ram, paths.disk, paths.seed, join(paths.dir, 'meta.json')]) expect(statSync(file).mode & 0o777, file).toBe(0o600);
  });
});
