import { describe, expect, it } from 'vitest';
import { resolveBootOptions } from '../../../src/guest/options.js';

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
