/**
 * Guests of other architectures on this x86_64 host, emulated (TCG): debian-12 on aarch64 (UEFI:
 * AAVMF, then GRUB from the image's EFI system partition) and debian-13 on riscv64 (OpenSBI, then
 * U-Boot reading the image's extlinux.conf), both built offline from Debian's archive by the global
 * setup. Each boots once, cold, into its warm snapshot; everything after restores from it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qemuVersion, which } from '../../src/host/tools.js';
import { findBuilt } from '../../src/image/build.js';
import { boot, type Guest, runMatrix } from '../../src/index.js';
import { type MachineArch, machineFor, restoreBlocker } from '../../src/qemu/arch.js';
import { FOREIGN_FIXTURES } from './global-setup.js';
import { guestDirs } from './helpers.js';

const CLI = join(import.meta.dirname, '../../dist/cli/main.js');
let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'kvmtest-arch-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.each(FOREIGN_FIXTURES.map(([image, arch]) => ({ image, arch })))('$arch guest ($image)', ({ image, arch }) => {
  let vm: Guest | undefined;
  /** Why this host's QEMU cannot restore a saved machine of this architecture (riscv64 on QEMU 7.2), if it cannot. */
  let blocker: string | undefined;
  beforeAll(async () => {
    blocker = restoreBlocker(arch, await qemuVersion((await which(machineFor(arch).binary))!));
  });
  afterAll(() => vm?.dispose());

  it('is built for its architecture: kernel and initrd exported, the recipe says which', async () => {
    const built = await findBuilt(image, arch);
    expect(built).toMatchObject({ arch, name: image });
    const manifest = JSON.parse(readFileSync(join(built!.dir, 'image.json'), 'utf8'));
    expect(manifest.arch).toBe(arch === 'aarch64' ? 'arm64' : 'riscv64');
    expect(manifest.append).toContain(arch === 'aarch64' ? 'console=ttyAMA0' : 'console=ttyS0');
  });

  it(`boots with its own firmware, and uname -m says ${arch}`, async () => {
    vm = await boot({ image, arch, snapshot: true, progress: true });
    expect(vm.info.accel).toBe('tcg');
    expect((await vm.exec(['uname', '-m'])).stdout.trim()).toBe(arch);
    expect(vm.info.agent.arch).toBe(arch);
    // where this QEMU cannot restore the architecture, the snapshot is refused at once and the guest boots cold
    expect(vm.info.snapshot === undefined).toBe(blocker !== undefined);
    console.log(`${arch} ${image}: up in ${(vm.info.bootMs / 1000).toFixed(1)} s (${vm.info.snapshot ? 'from its warm snapshot, made first if it was missing' : 'cold boot'})`);
  });

  it('a push, exec and pull round trip is byte-exact', async () => {
    const src = join(work, `${arch}-in`);
    mkdirSync(join(src, 'sub'), { recursive: true });
    const blob = randomBytes(3 * 1024 * 1024 + 17);
    writeFileSync(join(src, 'blob.bin'), blob);
    writeFileSync(join(src, 'sub', 'note.txt'), `hello from ${arch}\n`);
    await vm!.push(src, '/root/in');
    const sum = await vm!.exec(['sha256sum', '/root/in/blob.bin']);
    expect(sum.stdout.split(' ')[0]).toBe(createHashHex(blob));
    await vm!.exec(['sh', '-c', 'mkdir -p /root/out && cp -a /root/in/. /root/out/ && uname -m > /root/out/arch.txt']);
    const dest = join(work, `${arch}-out`);
    await vm!.pull('/root/out', dest);
    expect(readFileSync(join(dest, 'blob.bin')).equals(blob)).toBe(true);
    expect(readFileSync(join(dest, 'sub', 'note.txt'), 'utf8')).toBe(`hello from ${arch}\n`);
    expect(readFileSync(join(dest, 'arch.txt'), 'utf8')).toBe(`${arch}\n`);
  });

  it('a checkpoint and a capsule are refused at once, coded, where this QEMU cannot restore the architecture', async () => {
    if (!blocker) return; // aarch64: checkpoints and capsules work as on x86_64 (checkpoint.test.ts, capsule.test.ts)
    await expect(vm!.checkpoint()).rejects.toMatchObject({ code: 'SNAPSHOT_FAILED', message: blocker });
    // the guest is untouched by the refusal
    expect((await vm!.exec(['cat', '/root/out/arch.txt'])).stdout).toBe(`${arch}\n`);
    // a capsule ends its guest either way (as when a cell fails): refused before anything is written
    await expect(vm!.saveCapsule(join(work, `${arch}-capsule`))).rejects.toMatchObject({ code: 'CAPSULE_FAILED', message: blocker });
    expect(existsSync(join(work, `${arch}-capsule`))).toBe(false);
  });

  it('restores from its warm snapshot, and `kvmtest run --arch` does too', async () => {
    await vm?.dispose();
    vm = undefined;
    const run = await execa('node', [CLI, 'run', '--arch', arch, '--image', image, '--snapshot', '--', 'uname', '-m'], { reject: false, env: { CI: 'true' } });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout.trim()).toBe(arch);
    expect(run.stderr).toContain(`${arch} guest on x86_64 host`);
    if (blocker) {
      // said once, then a cold boot
      expect(run.stderr).toContain(`cannot make a snapshot (${blocker}); booting cold`);
      return;
    }
    vm = await boot({ image, arch, snapshot: true });
    expect(vm.info.snapshot).toBeDefined();
    expect((await vm.exec(['uname', '-m'])).stdout.trim()).toBe(arch);
    console.log(`${arch} ${image}: restored in ${(vm.info.bootMs / 1000).toFixed(1)} s`);
    await vm.dispose();
    vm = undefined;
    expect(guestDirs()).toEqual([]);
  });
});

describe('arch as a matrix axis', () => {
  it('one job over x86_64 and aarch64 reports per cell, each cell on its own architecture', async () => {
    const out = join(work, 'matrix');
    const report = await runMatrix({
      images: ['debian-12'],
      vary: { arch: ['x86_64', 'aarch64'] satisfies MachineArch[] },
      run: 'mkdir -p /tmp/out && uname -m | tee /tmp/out/arch.txt && test "$(uname -m)" = "$KVMTEST_ARCH"',
      collect: ['/tmp/out'],
      outDir: out,
      capsule: 'never',
    });
    expect(report.cells.map((c) => [c.id, c.status])).toEqual([
      ['debian-12/arch=x86_64', 'passed'],
      ['debian-12/arch=aarch64', 'passed'],
    ]);
    for (const c of report.cells) {
      const arch = c.id.split('=')[1]!;
      expect(c.stdoutTail?.trim()).toBe(arch);
      expect(c.collected).toHaveLength(1);
      expect(readFileSync(join(c.collected![0]!.host!, 'arch.txt'), 'utf8')).toBe(`${arch}\n`);
    }
    expect(guestDirs()).toEqual([]);
  });
});

describe('an architecture an image lacks', () => {
  it('is refused before any guest: IMAGE_UNKNOWN naming the ones kvmtest builds', async () => {
    const error = await boot({ image: 'debian-12', arch: 'riscv64' }).catch((e) => e);
    expect(error).toMatchObject({ code: 'IMAGE_UNKNOWN', message: expect.stringContaining('x86_64, aarch64') });
    expect(guestDirs()).toEqual([]);
  });
});

function createHashHex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
