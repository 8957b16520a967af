import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConsoleLog, judgeConsoleLine, judgeLoginPrompt } from '../../../src/qemu/console.js';
import { MAX_LINE_BYTES } from '../../../src/util/lines.js';

const dir = mkdtempSync(join(tmpdir(), 'kvmtest-unit-flow-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('console', () => {
  it('recognises kernel panics and firmware with nothing to boot', () => {
    expect(judgeConsoleLine('[    1.2] Kernel panic - not syncing: VFS: Unable to mount root fs')?.kind).toBe('panic');
    expect(judgeConsoleLine('No bootable device.  Retrying in 60 seconds.')?.kind).toBe('not-bootable');
    expect(judgeConsoleLine('[  OK  ] Started cloud-init.service')).toBeUndefined();
  });

  it('recognises an initramfs that gave up on the root file system (its shell would wait for ever), the lines initramfs-tools prints', () => {
    expect(judgeConsoleLine('Failed to mount /dev/vda1 as root file system.')?.kind).toBe('no-root');
    expect(judgeConsoleLine('Gave up waiting for root file system device.  Common problems:')?.kind).toBe('no-root');
    expect(judgeConsoleLine('ALERT!  UUID=85fb2d2e-40c3 does not exist.  Dropping to a shell!')?.kind).toBe('no-root');
    // a guest's own program printing the words later is not the initramfs
    expect(judgeConsoleLine('echo Failed to mount /dev/vda1 as root file system.')).toBeUndefined();
    expect(judgeConsoleLine('[  OK  ] Mounted /boot/efi')).toBeUndefined();
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
      expect(
        verdicts([
          '[    0.000000] Command line: root=/dev/vda1 cloud-init=disabled\n',
          '[    0.041] Kernel command line: root=/dev/vda1 cloud-init=disabled\n',
          '[    0.077] Unknown kernel command line parameters "cloud-init=disabled", will be passed to user space.\n',
          '[  OK  ] Reached target multi-user.target\r\n',
          '\r\nDebian GNU/Linux 12 kvm ttyS0\r\n\r\nkvm login: ',
        ]),
      ).toEqual(['no-cloud-init']);
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

describe('console under a flood', () => {
  it('32 MiB without a newline: each chunk is scanned once, the partial line and the tail stay bounded', async () => {
    const log = new ConsoleLog(join(dir, 'flood.log'), 50, { headBytes: 1024 * 1024, tailBytes: 256 * 1024 });
    const fatal: string[] = [];
    log.onFatal((v) => fatal.push(v.kind));
    const chunk = Buffer.alloc(64 * 1024, 'x');
    // the work per chunk is bounded by what it holds: at most one capped partial line, never the whole flood
    let most = 0;
    for (let i = 0; i < 512; i++) {
      log.write(chunk);
      most = Math.max(most, log.pendingBytes);
    }
    expect(most).toBe(MAX_LINE_BYTES);
    expect(log.pendingBytes).toBeLessThanOrEqual(MAX_LINE_BYTES);
    expect(log.lastLines().length).toBeLessThanOrEqual(5000);
    log.write(Buffer.from('\n[    9.1] Kernel panic - not syncing: after the flood\nkvm login: '));
    expect(fatal).toEqual(['panic', 'no-cloud-init']);
    expect(log.lastLines(3)).toMatch(/bytes cut\]\n\[ {4}9.1\] Kernel panic/);
    expect(log.droppedBytes).toBeGreaterThan(30 * 1024 * 1024);
    await log.close();
    const text = readFileSync(join(dir, 'flood.log'), 'utf8');
    expect(statSync(join(dir, 'flood.log')).size).toBeLessThan(1024 * 1024 + 256 * 1024 + 1000);
    expect(text).toMatch(/\n\[kvmtest: \d+ bytes of console output dropped here/);
    expect(text.endsWith('after the flood\nkvm login: ')).toBe(true);
  });

  it('tiny chunks: console.log holds exactly the head, a marker and the last bytes', async () => {
    const path = join(dir, 'tiny.log');
    const log = new ConsoleLog(path, 50, { headBytes: 1000, tailBytes: 777 });
    const all = Buffer.from(Array.from({ length: 40_000 }, (_, i) => `${i % 10 === 9 ? '\n' : ''}${i}`).join(''));
    for (let at = 0; at < all.length; at += 13) log.write(all.subarray(at, at + 13));
    await log.close();
    const text = readFileSync(path, 'latin1');
    const marker = `\n[kvmtest: ${all.length - 1777} bytes of console output dropped here: the log keeps the first 1000 and the last 777 bytes]\n`;
    expect(text).toBe(all.subarray(0, 1000).toString('latin1') + marker + all.subarray(-777).toString('latin1'));
  });

  it('decodes UTF-8 split across chunks and still sees a login prompt without a newline', () => {
    const log = new ConsoleLog(join(dir, 'utf8.log'));
    const seen: string[] = [];
    log.onFatal((v) => seen.push(v.kind));
    const bytes = Buffer.from('Début ✓\r\nhôte login: ');
    for (const byte of bytes) log.write(Buffer.from([byte]));
    expect(log.lastLines()).toBe('Début ✓\nhôte login: ');
    expect(seen).toEqual(['no-cloud-init']);
    void log.close();
  });
});
