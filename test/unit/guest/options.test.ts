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
