/**
 * Bad input gets an error with a stable code and a message that says what to do, and loses
 * nothing: the base image is unchanged (checksum) and no guest directory is left. (More cases:
 * kernel-boot.test.ts for non-bootable and cloud-init-less images, unit tests for options, frames.)
 */

import { closeSync, copyFileSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { boot, type Guest } from '../../src/index.js';
import { guestDirs, sha256File } from './helpers.js';

const image = inject('debian12');
const work = mkdtempSync(join(tmpdir(), 'kvmtest-test-'));
let baseDigest: string;
let vm: Guest;
/** Guest directories other than this file's own running guest. */
const leftovers = () => guestDirs().filter((d) => !vm.info.dir.endsWith(d));

beforeAll(async () => {
  baseDigest = await sha256File(image.disk);
  vm = await boot({ image: 'debian-12', boot: 'kernel', snapshot: true });
});
afterAll(async () => {
  await vm?.dispose();
  rmSync(work, { recursive: true, force: true });
  expect(await sha256File(image.disk)).toBe(baseDigest);
});

describe('bad images and options', () => {
  it('a truncated qcow2 is IMAGE_INVALID', async () => {
    const truncated = join(work, 'truncated.qcow2');
    const buffer = Buffer.alloc(1 << 20);
    const fd = openSync(image.disk, 'r');
    readSync(fd, buffer, 0, buffer.length, 0);
    closeSync(fd);
    writeFileSync(truncated, buffer);
    await expect(boot({ image: truncated })).rejects.toMatchObject({ code: 'IMAGE_INVALID', message: expect.stringMatching(/damaged qcow2 .*truncated/) });
    expect(leftovers()).toEqual([]);
  });

  it('a qcow2 whose backing file is missing is IMAGE_INVALID, naming it', async () => {
    const orphan = join(work, 'orphan.qcow2');
    await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', join(work, 'gone.qcow2'), '-F', 'qcow2', orphan, '1G']);
    await expect(boot({ image: orphan })).rejects.toMatchObject({ code: 'IMAGE_INVALID', message: expect.stringMatching(/gone\.qcow2/) });
    expect(leftovers()).toEqual([]);
  });

  it('a malformed cloud-config, bad memory and bad CPU counts are refused before anything starts', async () => {
    await expect(boot({ image: image.disk, cloudConfig: 'runcmd: [unclosed' })).rejects.toMatchObject({ code: 'CLOUD_CONFIG_INVALID' });
    for (const bad of [{ memory: '0' }, { memory: '12Q' }, { cpus: 0 }, { cpus: 1.5 }] as const) {
      await expect(boot({ image: image.disk, ...bad }), JSON.stringify(bad)).rejects.toMatchObject({ code: 'INVALID_OPTION', message: expect.stringMatching(/Expected the "(memory|cpus)" option/) });
    }
    expect(leftovers()).toEqual([]);
  });
});

describe('bad requests to a running guest', () => {
  it('a command that does not exist is COMMAND_NOT_FOUND; the guest stays usable', async () => {
    await expect(vm.exec(['no-such-command-here'])).rejects.toMatchObject({ code: 'COMMAND_NOT_FOUND' });
    expect((await vm.exec(['true'])).exitCode).toBe(0);
  });

  it('a push of a host path that does not exist is LOCAL_PATH_NOT_FOUND', async () => {
    await expect(vm.push(join(work, 'no-such-dir'), '/root/x')).rejects.toMatchObject({ code: 'LOCAL_PATH_NOT_FOUND' });
  });

  it('a pull into a place the host cannot write is HOST_IO; a pull of a missing guest path is GUEST_IO', async () => {
    const file = join(work, 'a-file');
    copyFileSync(image.initrd, file);
    // root may write anywhere a mode allows: a path under a regular file cannot be written by anyone
    await expect(vm.pull('/etc/hostname', join(file, 'sub', 'hostname'))).rejects.toMatchObject({ code: 'HOST_IO' });
    await expect(vm.pull('/no/such/path', join(work, 'out'))).rejects.toMatchObject({ code: 'GUEST_IO', message: expect.stringMatching(/No such file/) });
    expect((await vm.exec(['true'])).exitCode).toBe(0);
  });
});
