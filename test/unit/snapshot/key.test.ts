import { describe, expect, it } from 'vitest';
import { canonical, type SnapshotInputs, snapshotKey } from '../../../src/snapshot/key.js';

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
