import { describe, expect, it } from 'vitest';
import { judgeConsoleLine, judgeLoginPrompt, ConsoleLog } from '../../../src/qemu/console.js';
import { parseDiskInfo } from '../../../src/image/disk.js';
import { hostFamily, installHint, parseQemuVersion } from '../../../src/host/tools.js';
import { cacheDir } from '../../../src/image/cache.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('console', () => {
  it('recognises kernel panics and firmware with nothing to boot', () => {
    expect(judgeConsoleLine('[    1.2] Kernel panic - not syncing: VFS: Unable to mount root fs')?.kind).toBe('panic');
    expect(judgeConsoleLine('No bootable device.  Retrying in 60 seconds.')?.kind).toBe('not-bootable');
    expect(judgeConsoleLine('[  OK  ] Started cloud-init.service')).toBeUndefined();
  });

  it('a login prompt before any word of cloud-init means the image has no cloud-init', async () => {
    expect(judgeLoginPrompt('debian login: ', false)?.kind).toBe('no-cloud-init');
    expect(judgeLoginPrompt('debian login: ', true)).toBeUndefined();
    expect(judgeLoginPrompt('Last login: Mon Nov 23', false)).toBeUndefined();
    expect(judgeLoginPrompt('localhost login: [   20.691919] powernow_k8: Power state transitions not supported', false)?.kind).toBe('no-cloud-init');
    const dir = mkdtempSync(join(tmpdir(), 'kvmtest-unit-'));
    try {
      const verdicts = (chunks: string[]) => {
        const log = new ConsoleLog(join(dir, 'console.log'));
        const seen: string[] = [];
        log.onFatal((v) => seen.push(v.kind));
        for (const chunk of chunks) log.write(Buffer.from(chunk));
        void log.close();
        return seen;
      };
      // the prompt waits without a newline
      // the kernel's echo of a command line saying cloud-init=disabled is not cloud-init running
      expect(verdicts(['[    0.000000] Command line: root=/dev/vda1 cloud-init=disabled\n', '[    0.041] Kernel command line: root=/dev/vda1 cloud-init=disabled\n', '[    0.077] Unknown kernel command line parameters "cloud-init=disabled", will be passed to user space.\n', '[  OK  ] Reached target multi-user.target\r\n', '\r\nDebian GNU/Linux 12 kvm ttyS0\r\n\r\nkvm login: '])).toEqual(['no-cloud-init']);
      expect(verdicts(['[  OK  ] Finished cloud-init-local.service\n', 'kvm login: '])).toEqual([]);
      expect(verdicts([' * Starting cloud-init ...\n', 'alpine login: \n', 'alpine login: '])).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('logs to a file and keeps the last lines, escapes stripped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvmtest-unit-'));
    try {
      const log = new ConsoleLog(join(dir, 'console.log'), 3);
      log.write(Buffer.from('one\r\n\x1b[0;32mtwo\x1b[0m\nthree\nfour\nfi'));
      log.write(Buffer.from('ve'));
      expect(log.lastLines()).toBe('three\nfour\nfive');
      await log.close();
      expect(readFileSync(join(dir, 'console.log'), 'utf8')).toContain('four\nfive');
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});

describe('disk images and host', () => {
  it('reads qemu-img info and accepts only qcow2 and raw', () => {
    expect(parseDiskInfo('/i', JSON.stringify([{ format: 'qcow2', 'virtual-size': 4294967296 }]))).toEqual({ path: '/i', format: 'qcow2', virtualSize: 4294967296 });
    expect(() => parseDiskInfo('/i', JSON.stringify([{ format: 'vmdk' }]))).toThrowError(expect.objectContaining({ code: 'IMAGE_INVALID', message: expect.stringMatching(/qemu-img convert/) }));
  });

  it('install hints follow the host family', () => {
    expect(hostFamily('ID=ubuntu\nID_LIKE=debian\n')).toBe('debian');
    expect(hostFamily('ID="fedora"\n')).toBe('fedora');
    expect(installHint('qemu-img', 'debian')).toBe('sudo apt-get install -y qemu-utils');
    expect(installHint('iso', 'fedora')).toBe('sudo dnf install -y genisoimage');
  });

  it('parses QEMU versions and finds the cache directory', () => {
    expect(parseQemuVersion('QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)')).toBe('7.2.22');
    expect(cacheDir({ KVMTEST_CACHE: '/c' })).toBe('/c');
    expect(cacheDir({ XDG_CACHE_HOME: '/x' })).toBe('/x/kvmtest');
  });
});
