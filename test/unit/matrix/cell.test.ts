import { afterEach, describe, expect, it } from 'vitest';
import { cellBootOptions, cellEnv, collectTarget, judgeAttempt } from '../../../src/matrix/cell.js';
import type { TestCase } from '../../../src/matrix/types.js';

describe('cells', () => {
  const cell = { id: 'debian-12/cpus=1/suite=fast', image: 'debian-12', axes: { cpus: 1, suite: 'fast' } };

  it('takes boot options from the axes over the shared ones, snapshots by default', () => {
    expect(cellBootOptions(cell, { boot: { cpus: 4, memory: '2G' } })).toEqual({ cpus: 1, memory: '2G', image: 'debian-12', snapshot: true });
    expect(cellBootOptions(cell, { snapshot: false }).snapshot).toBe(false);
    expect(cellBootOptions(cell, { setup: { run: 'make' } }).setup).toEqual({ run: 'make' });
  });

  it('gives the run its cell and axes as KVMTEST_ variables', () => {
    expect(cellEnv(cell, { CI: '1' }, 2)).toEqual({ CI: '1', KVMTEST_CELL: cell.id, KVMTEST_IMAGE: 'debian-12', KVMTEST_ATTEMPT: '2', KVMTEST_CPUS: '1', KVMTEST_SUITE: 'fast' });
  });

  it('judges an attempt by timeout, error, exit code and failed cases', () => {
    const ok: TestCase = { name: 'a', suite: '', status: 'passed', file: '/r.xml' };
    const bad: TestCase = { ...ok, status: 'failed' };
    expect(judgeAttempt({ exitCode: 0, cases: [ok], timedOut: false })).toBe('passed');
    expect(judgeAttempt({ exitCode: 0, cases: [ok, bad], timedOut: false })).toBe('failed');
    expect(judgeAttempt({ exitCode: 3, cases: [], timedOut: false })).toBe('failed');
    expect(judgeAttempt({ exitCode: null, cases: [], error: { code: 'BOOT_TIMEOUT' }, timedOut: false })).toBe('error');
    expect(judgeAttempt({ exitCode: null, cases: [], error: { code: 'CELL_TIMEOUT' }, timedOut: true })).toBe('timeout');
  });
});

describe('matrix: where attempts and collected paths land (pure)', () => {
  it("a collected guest path lands under the attempt's files/, never above it", () => {
    expect(collectTarget('/a1', '/work/results')).toBe('/a1/files/work/results');
    expect(collectTarget('/a1', '/work/../../../etc')).toBe('/a1/files/etc');
    expect(collectTarget('/a1', '/')).toBe('/a1/files');
  });
});

describe('cells with capsules: a named CPU model so that a capsule moves between hosts', () => {
  const cell = { id: 'debian-12', image: 'debian-12', axes: {} };
  const realArch = Object.getOwnPropertyDescriptor(process, 'arch')!;
  /** Runs as on a host of Node's `arch` (x64, arm64). */
  const asHost = (arch: string) => Object.defineProperty(process, 'arch', { ...realArch, value: arch });
  afterEach(() => {
    Object.defineProperty(process, 'arch', realArch);
  });

  it.each(['on-failure', 'always'] as const)('x86_64, capsule %s, no cpu given: pinned to Nehalem', (capsule) => {
    asHost('x64');
    expect(cellBootOptions(cell, { capsule })).toEqual({ image: 'debian-12', snapshot: true, cpu: 'Nehalem' });
    expect(cellBootOptions(cell, { capsule, boot: { memory: '2G', accel: 'kvm' } })).toMatchObject({ memory: '2G', accel: 'kvm', cpu: 'Nehalem' });
  });

  it('capsules never (or not said): the accelerator chooses the CPU, none pinned', () => {
    asHost('x64');
    expect(cellBootOptions(cell, { capsule: 'never' })).not.toHaveProperty('cpu');
    expect(cellBootOptions(cell, {})).not.toHaveProperty('cpu');
    expect(cellBootOptions(cell, { capsule: 'never', boot: { memory: '2G' } })).toEqual({ memory: '2G', image: 'debian-12', snapshot: true });
  });

  it("the matrix's boot.cpu is kept, and a cpu axis overrides both it and the pin", () => {
    asHost('x64');
    expect(cellBootOptions(cell, { capsule: 'on-failure', boot: { cpu: 'Skylake-Client-v4' } }).cpu).toBe('Skylake-Client-v4');
    expect(cellBootOptions(cell, { capsule: 'never', boot: { cpu: 'Skylake-Client-v4' } }).cpu).toBe('Skylake-Client-v4');
    const onWestmere = { id: 'debian-12/cpu=Westmere', image: 'debian-12', axes: { cpu: 'Westmere' } };
    expect(cellBootOptions(onWestmere, { capsule: 'always' }).cpu).toBe('Westmere');
    expect(cellBootOptions(onWestmere, { capsule: 'always', boot: { cpu: 'Skylake-Client-v4' } }).cpu).toBe('Westmere');
    expect(cellBootOptions(onWestmere, { capsule: 'never' }).cpu).toBe('Westmere');
    // and the run sees its axis, as every axis
    expect(cellEnv(onWestmere)).toMatchObject({ KVMTEST_CPU: 'Westmere' });
  });

  it("the matrix's boot options are read, never written", () => {
    asHost('x64');
    const boot = { memory: '2G' };
    cellBootOptions(cell, { capsule: 'always', boot });
    expect(boot).toEqual({ memory: '2G' });
  });

  it('an arch axis is a boot option (cell ids such as debian-12/arch=aarch64); a foreign guest gets no x86 pin', () => {
    asHost('x64');
    const onArm = { id: 'debian-12/arch=aarch64', image: 'debian-12', axes: { arch: 'aarch64' } };
    expect(cellBootOptions(onArm, { capsule: 'always' })).toEqual({ image: 'debian-12', arch: 'aarch64', snapshot: true });
    expect(cellBootOptions({ ...onArm, axes: { arch: 'x86_64' } }, { capsule: 'always' })).toMatchObject({ arch: 'x86_64', cpu: 'Nehalem' });
    expect(cellBootOptions(onArm, { capsule: 'never', boot: { arch: 'riscv64' } }).arch).toBe('aarch64');
    expect(cellEnv(onArm)).toMatchObject({ KVMTEST_ARCH: 'aarch64', KVMTEST_CELL: 'debian-12/arch=aarch64' });
    // an arch kvmtest does not know is boot()'s to refuse, in the cell: nothing thrown here
    expect(cellBootOptions({ ...onArm, axes: { arch: 'sparc' } }, { capsule: 'always' })).toEqual({ image: 'debian-12', arch: 'sparc', snapshot: true });
  });

  it('aarch64 has no portable CPU model (KVM there runs the host CPU only): nothing pinned', () => {
    asHost('arm64');
    expect(cellBootOptions(cell, { capsule: 'always' })).not.toHaveProperty('cpu');
    expect(cellBootOptions(cell, { capsule: 'always', boot: { cpu: 'cortex-a72' } }).cpu).toBe('cortex-a72');
  });
});
