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
    [{ setup: 'make' }, /"setup" option/],
    [{ setup: { run: '' } }, /"setup.run" option/],
    [{ setup: { run: [] } }, /"setup.run" option/],
    [{ setup: { run: 'x', push: ['a'] } }, /"setup.push" option/],
    [{ setup: { run: 'x', env: { A: 1 } } }, /"setup.env" option/],
    [{ setup: { run: 'x', cwd: 'rel' } }, /"setup.cwd" option/],
    [{ setup: { run: 'x', timeout: '-1s' } }, /"setup.timeout" option/],
    [{ setup: { run: 'x', command: 'y' } }, /only push, run, env, cwd and timeout/],
  ])('rejects %o with INVALID_OPTION', (over, message) => {
    expect(() => resolveBootOptions({ image: 'x.qcow2', ...over } as never)).toThrowError(expect.objectContaining({ code: 'INVALID_OPTION', message: expect.stringMatching(message) }));
  });

  it("arch: the host's by default; each architecture's own firmware unless told", () => {
    const host = process.arch === 'x64' ? 'x86_64' : process.arch === 'arm64' ? 'aarch64' : process.arch;
    expect(resolveBootOptions({ image: 'x' }).arch).toBe(host);
    expect(resolveBootOptions({ image: 'x', arch: 'x86_64' })).toMatchObject({ arch: 'x86_64', firmware: 'bios' });
    // aarch64: UEFI, the host's AAVMF found later unless the user gives the files
    expect(resolveBootOptions({ image: 'x', arch: 'aarch64' })).toMatchObject({ arch: 'aarch64', firmware: 'uefi' });
    expect(resolveBootOptions({ image: 'x', arch: 'aarch64' }).uefi).toBeUndefined();
    expect(resolveBootOptions({ image: 'x', arch: 'aarch64', uefiCode: '/c', uefiVars: '/v' }).uefi).toEqual({ code: '/c', vars: '/v' });
    expect(resolveBootOptions({ image: 'x', arch: 'riscv64' })).toMatchObject({ arch: 'riscv64', firmware: 'uboot' });
    expect(resolveBootOptions({ image: 'x', arch: 'riscv64', boot: 'kernel' })).toMatchObject({ bootMode: 'kernel' });
  });

  it.each([
    [{ arch: 'arm64' }, /"arch" option to be 'x86_64', 'aarch64', 'riscv64'/],
    [{ arch: 'amd64' }, /"arch" option/],
    [{ arch: 'ppc64le' }, /"arch" option/],
    [{ arch: 'aarch64', firmware: 'bios' }, /"firmware" option of aarch64 guests to be 'uefi'/],
    [{ arch: 'riscv64', firmware: 'uefi' }, /"firmware" option of riscv64 guests to be 'uboot'/],
    [{ arch: 'x86_64', firmware: 'uboot' }, /'bios' or 'uefi'/],
    [{ arch: 'aarch64', uefiCode: '/c' }, /uefiVars/],
  ])('rejects %o with INVALID_OPTION', (over, message) => {
    expect(() => resolveBootOptions({ image: 'x.qcow2', ...over } as never)).toThrowError(expect.objectContaining({ code: 'INVALID_OPTION', message: expect.stringMatching(message) }));
  });

  it('network: outbound false isolates the guest; true or absent is plain NAT', () => {
    expect(resolveBootOptions({ image: 'x', network: { forwards: [{ guest: 22 }], outbound: false } }).network).toEqual({ forwards: [{ guest: 22 }], outbound: false });
    expect(resolveBootOptions({ image: 'x', network: { outbound: true } }).network).toEqual({ forwards: [] });
  });

  it('setup implies a snapshot (unless turned off), resolves push sources, defaults the timeout to 30 minutes', () => {
    const opts = resolveBootOptions({ image: 'x', setup: { push: { app: '/opt/app' }, run: ['make'] } });
    expect(opts.snapshot).toBe(true);
    expect(opts.setup).toEqual({ push: [{ source: `${process.cwd()}/app`, dest: '/opt/app' }], run: ['make'], env: {}, timeoutMs: 30 * 60_000 });
    expect(resolveBootOptions({ image: 'x', snapshot: false, setup: { run: 'make' } }).snapshot).toBe(false);
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

describe('the cpu option: a named QEMU CPU model', () => {
  it.each(['Nehalem', 'Skylake-Client-v4', 'cortex-a72', 'qemu64', 'Opteron_G1', 'x'.repeat(64)])('%s is accepted and carried', (cpu) => {
    expect(resolveBootOptions({ image: 'debian-12', cpu }).cpu).toBe(cpu);
  });

  it('absent: no cpu (the accelerator chooses: host under KVM, max under TCG)', () => {
    expect(resolveBootOptions({ image: 'debian-12' })).not.toHaveProperty('cpu');
  });

  it.each<unknown>(['Nehalem,+vmx', 'Nehalem,enforce=off', '', '-Nehalem', '.hidden', 'Nehalem v2', 'Nehalem\n', 'x'.repeat(65), 42, null, ['Nehalem']])('%j is INVALID_OPTION naming "cpu"', (cpu) => {
    expect(() => resolveBootOptions({ image: 'debian-12', cpu } as never)).toThrowError(expect.objectContaining({ code: 'INVALID_OPTION', message: expect.stringContaining('"cpu" option') }));
  });
});
