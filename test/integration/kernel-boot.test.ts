/**
 * Direct kernel boot of the same Debian 12 disk, and boots that must fail: each failure says why,
 * carries the console tail, and leaves nothing behind.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { judgeKvm, probeKvm } from '../../src/host/accel.js';
import { boot, type Guest } from '../../src/index.js';
import { guestDirs, sha256File } from './helpers.js';

const image = inject('debian12');
let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'kvmtest-test-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('direct kernel boot', () => {
  let vm: Guest;
  afterAll(() => vm?.dispose());

  it('boots the image by its own kernel and initrd', async () => {
    vm = await boot({ image: 'debian-12', boot: 'kernel', cpus: 2, memory: '1G' });
    const r = await vm.exec(['uname', '-a']);
    expect(r.stdout).toMatch(/^Linux kvmtest-\w+ 6\.1\./);
    expect((await vm.exec(['cat', '/proc/cmdline'])).stdout).toContain('root=');
    console.log(`kernel boot to agent hello: ${(vm.info.bootMs / 1000).toFixed(1)} s`);
  });
});

describe('boots that fail', () => {
  it('times out with BOOT_TIMEOUT and the console tail', async () => {
    const error = await boot({ image: image.disk, kernel: image.kernel, initrd: image.initrd, append: image.append, bootTimeout: '6s' }).catch((e) => e);
    expect(error).toMatchObject({ code: 'BOOT_TIMEOUT' });
    // the kernel got going, and the tail shows how far
    expect(error.consoleTail).toMatch(/^\[\s*\d+\.\d+\] /m);
    expect(guestDirs()).toEqual([]);
  });

  it('an image whose cloud-init does not run fails with NO_CLOUD_INIT at its login prompt, not at the timeout', async () => {
    // a timeout would be BOOT_TIMEOUT: the code alone shows it failed at the prompt
    const error = await boot({ image: image.disk, kernel: image.kernel, initrd: image.initrd, append: `${image.append} cloud-init=disabled` }).catch((e) => e);
    expect(error).toMatchObject({ code: 'NO_CLOUD_INIT' });
    expect(error.message).toMatch(/login prompt .* without running cloud-init/);
    expect(error.consoleTail).toMatch(/login:/);
    expect(guestDirs()).toEqual([]);
  });

  it('a disk with no bootloader fails fast with NOT_BOOTABLE and the console tail', async () => {
    const blank = join(work, 'blank.raw');
    writeFileSync(blank, Buffer.alloc(8 * 1024 * 1024));
    const before = await sha256File(blank);
    const error = await boot({ image: blank }).catch((e) => e);
    expect(error).toMatchObject({ code: 'NOT_BOOTABLE' });
    expect(error.consoleTail).toMatch(/No bootable device|Boot failed/);
    expect(await sha256File(blank)).toBe(before);
    expect(guestDirs()).toEqual([]);
  });

  it('a kernel that cannot mount its root panics: KERNEL_PANIC, at once, with the panic in the tail', async () => {
    // no initrd: the kernel itself looks for the root, fails, and panics
    const error = await boot({ image: image.disk, kernel: image.kernel, append: 'root=/dev/nonexistent panic=0 console=ttyS0' }).catch((e) => e);
    expect(error).toMatchObject({ code: 'KERNEL_PANIC' });
    expect(error.consoleTail).toMatch(/Kernel panic - not syncing/);
    expect(guestDirs()).toEqual([]);
  });

  it('bad images get clear errors and stable codes', async () => {
    await expect(boot({ image: join(work, 'missing.qcow2') })).rejects.toMatchObject({ code: 'IMAGE_NOT_FOUND' });
    const text = join(work, 'not-an-image.qcow2');
    writeFileSync(text, 'hello');
    // qemu-img reads an unknown file as raw: it boots nothing
    await expect(boot({ image: text })).rejects.toMatchObject({ code: expect.stringMatching(/NOT_BOOTABLE|IMAGE_INVALID/) });
    await expect(boot({ image: image.disk, memory: 'lots' })).rejects.toMatchObject({ code: 'INVALID_OPTION' });
    expect(guestDirs()).toEqual([]);
  });

  it("accel 'kvm' fails at once where KVM is unusable, saying why", async () => {
    const verdict = judgeKvm(await probeKvm());
    if (verdict.usable) return; // on a host with working KVM there is nothing to refuse
    await expect(boot({ image: image.disk, accel: 'kvm' })).rejects.toMatchObject({ code: 'KVM_UNUSABLE', message: expect.stringContaining(verdict.reason) });
  });
});
