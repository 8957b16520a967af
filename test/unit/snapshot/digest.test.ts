import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileDigest } from '../../../src/snapshot/digest.js';
import { canonical, snapshotKey, type SnapshotInputs } from '../../../src/snapshot/key.js';
import { buildQemuArgs, INCOMING_STATE_FD } from '../../../src/qemu/argv.js';

const inputs: SnapshotInputs = {
  baseDigest: 'a'.repeat(64),
  qemuVersion: '7.2.22',
  machineArgs: ['-m', '1024M', '-smp', '2'],
  agentDigest: 'b'.repeat(64),
  cloudConfig: { runcmd: [['true']], packages: ['jq'] },
};

describe('snapshot key', () => {
  it('is stable for equal inputs, whatever the key order', () => {
    expect(snapshotKey(inputs)).toBe(snapshotKey({ ...inputs, cloudConfig: { packages: ['jq'], runcmd: [['true']] } }));
    expect(canonical({ b: 1, a: [1, { d: 2, c: 3 }] })).toBe('{"a":[1,{"c":3,"d":2}],"b":1}');
  });

  it.each([
    ['base image content', { baseDigest: 'c'.repeat(64) }],
    ['QEMU version', { qemuVersion: '8.0.0' }],
    ['memory', { machineArgs: ['-m', '2048M', '-smp', '2'] }],
    ['CPU count', { machineArgs: ['-m', '1024M', '-smp', '4'] }],
    ['agent', { agentDigest: 'd'.repeat(64) }],
    ['cloud-config', { cloudConfig: { runcmd: [['false']] } }],
    ['kernel', { kernelDigests: ['e'.repeat(64)] }],
  ])('changes with the %s', (_, change) => {
    expect(snapshotKey({ ...inputs, ...change })).not.toBe(snapshotKey(inputs));
  });
});

describe('restore argv', () => {
  it('loads the saved state from an inherited fd: no shell, no exec: (the sandbox denies spawn)', () => {
    const args = buildQemuArgs({
      name: 'n', accel: 'tcg', cpus: 1, memoryMiB: 512, disk: '/d', backing: [{ path: '/b', format: 'qcow2' }], seed: '/s', boot: { kind: 'firmware', firmware: 'bios' },
      qmpSocket: '/q', agentSocket: '/a', network: false, incomingState: "/cache/it's/state.bin",
    });
    expect(args.slice(-2)).toEqual(['-incoming', `fd:${INCOMING_STATE_FD}`]);
    expect(args.join(' ')).not.toContain('exec:');
    expect(args).toContain('vmgenid,guid=auto');
  });
});

describe('content digest memo', () => {
  it('notices a same-size rewrite whose mtime was put back (ctime moved)', async () => {
    const top = mkdtempSync(join(tmpdir(), 'kvmtest-digest-'));
    const saved = process.env.KVMTEST_CACHE;
    process.env.KVMTEST_CACHE = join(top, 'cache');
    try {
      const file = join(top, 'base.img');
      writeFileSync(file, 'A'.repeat(4096));
      utimesSync(file, 1_700_000_000, 1_700_000_000); // whole seconds: utimes can put them back exactly
      const before = statSync(file, { bigint: true });
      const first = await fileDigest(file);
      expect(await fileDigest(file)).toBe(first); // remembered
      // same size, same inode, mtime restored: only ctime tells (rewrite until the kernel's clock ticked)
      let after = before;
      while (after.ctimeNs === before.ctimeNs) {
        writeFileSync(file, 'B'.repeat(4096));
        utimesSync(file, 1_700_000_000, 1_700_000_000);
        after = statSync(file, { bigint: true });
      }
      expect([after.size, after.ino, after.mtimeNs]).toEqual([before.size, before.ino, before.mtimeNs]);
      const second = await fileDigest(file);
      expect(second).not.toBe(first);
      expect(second).toBe(createHash('sha256').update('B'.repeat(4096)).digest('hex'));
    } finally {
      if (saved === undefined) delete process.env.KVMTEST_CACHE;
      else process.env.KVMTEST_CACHE = saved;
      rmSync(top, { recursive: true, force: true });
    }
  });
});
