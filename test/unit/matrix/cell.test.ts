import { describe, expect, it } from 'vitest';
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
