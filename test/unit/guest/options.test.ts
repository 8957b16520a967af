import { describe, expect, it } from 'vitest';
import { resolveBootOptions } from '../../../src/guest/options.js';

describe('options', () => {
  it('defaults: 1G, 2 CPUs, auto acceleration, firmware boot, no network', () => {
    expect(resolveBootOptions({ image: 'x.qcow2' })).toMatchObject({ memoryMiB: 1024, cpus: 2, accel: 'auto', bootMode: 'firmware', network: false });
  });

  it.each([
    [{ memory: '1X' }, /"memory" option/],
    [{ memory: 16 }, /at least 64M/],
    [{ cpus: 0 }, /"cpus" option/],
    [{ cpus: 1.5 }, /"cpus" option/],
    [{ accel: 'hvf' }, /"accel" option/],
    [{ bootTimeout: '-1s' }, /"bootTimeout" option/],
    [{ hostname: 'bad_name!' }, /"hostname" option/],
    [{ initrd: '/i' }, /need "kernel"/],
    [{ firmware: 'uefi' }, /uefiCode/],
    [{ network: { forwards: [{ guest: 70000 }] } }, /1 to 65535/],
    [{ network: { outbound: 'no' } }, /"network.outbound" option/],
    [{ network: { forwards: [], restrict: true } }, /only "forwards" and "outbound"/],
    [{ image: '' }, /"image" option/],
  ])('rejects %o with INVALID_OPTION', (over, message) => {
    expect(() => resolveBootOptions({ image: 'x.qcow2', ...over } as never)).toThrowError(expect.objectContaining({ code: 'INVALID_OPTION', message: expect.stringMatching(message) }));
  });

  it('network: outbound false isolates the guest; true or absent is plain NAT', () => {
    expect(resolveBootOptions({ image: 'x', network: { forwards: [{ guest: 22 }], outbound: false } }).network).toEqual({ forwards: [{ guest: 22 }], outbound: false });
    expect(resolveBootOptions({ image: 'x', network: { outbound: true } }).network).toEqual({ forwards: [] });
  });

  it('kernel implies direct kernel boot', () => {
    expect(resolveBootOptions({ image: 'x', kernel: '/k', append: 'quiet' })).toMatchObject({ bootMode: 'kernel', kernel: { kernel: '/k', append: 'quiet' } });
  });
});

describe('resolved boot options are complete', () => {
  it('defaults progress, snapshot and the cloud-config; no signal or qemuArgs unless given', () => {
    const opts = resolveBootOptions({ image: 'debian-12' });
    expect(opts).toMatchObject({ progress: false, snapshot: false, cloudConfig: {} });
    expect(opts).not.toHaveProperty('signal');
    expect(opts).not.toHaveProperty('qemuArgs');
  });

  it('carries signal, qemuArgs, progress, snapshot and the parsed cloud-config', () => {
    const signal = new AbortController().signal;
    const qemuArgs = ['-smbios', 'type=1'];
    const opts = resolveBootOptions({ image: 'debian-12', signal, qemuArgs, progress: true, snapshot: true, cloudConfig: 'packages: [jq]\n' });
    expect(opts.signal).toBe(signal);
    expect(opts.qemuArgs).toEqual(qemuArgs);
    // a copy: changing the caller's array later does not change the machine
    expect(opts.qemuArgs).not.toBe(qemuArgs);
    expect(opts).toMatchObject({ progress: true, snapshot: true, cloudConfig: { packages: ['jq'] } });
  });

  it.each([
    [{ progress: 'yes' }, '"progress"'],
    [{ snapshot: 1 }, '"snapshot"'],
    [{ qemuArgs: '-smp 2' }, '"qemuArgs"'],
    [{ qemuArgs: ['-m', 512] }, '"qemuArgs"'],
    [{ signal: {} }, '"signal"'],
  ])('%o is INVALID_OPTION naming the option', (bad, name) => {
    expect(() => resolveBootOptions({ image: 'debian-12', ...(bad as object) })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION', message: expect.stringContaining(name) }));
  });

  it('a cloud-config that is not a mapping is CLOUD_CONFIG_INVALID, as before', () => {
    expect(() => resolveBootOptions({ image: 'debian-12', cloudConfig: '- a\n- b\n' })).toThrow(expect.objectContaining({ code: 'CLOUD_CONFIG_INVALID' }));
  });
});
