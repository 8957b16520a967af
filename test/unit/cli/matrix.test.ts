import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chooseReporters, type MatrixFlags, matrixOptionsFrom, parseVary } from '../../../src/cli/matrix.js';

describe('CLI helpers', () => {
  it('parses --vary values as numbers, booleans or text', () => {
    expect(parseVary('cpus=1,2')).toEqual(['cpus', [1, 2]]);
    expect(parseVary('memory=512M,2G')).toEqual(['memory', ['512M', '2G']]);
    expect(parseVary('debug=true,false')).toEqual(['debug', [true, false]]);
    expect(() => parseVary('cpus')).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });

  it('adds the github reporter under GitHub Actions and refuses unknown ones', () => {
    expect([...chooseReporters([], {})]).toEqual(['default']);
    expect([...chooseReporters(['junit'], { GITHUB_ACTIONS: 'true' })]).toEqual(['junit', 'github']);
    expect(() => chooseReporters(['xml'], {})).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect([...chooseReporters(['html'], {})]).toEqual(['html']);
  });
});

describe('matrixOptionsFrom', () => {
  const flags = (over: Partial<MatrixFlags> = {}): MatrixFlags => ({
    image: ['debian-12'],
    vary: [],
    reporter: [],
    out: 'out',
    push: [],
    mount: [],
    collect: [],
    env: [],
    snapshot: true,
    ...over,
  });

  it('--mount and --push become host → guest maps, --capsule the capsule option', async () => {
    // the repository's root has no kvmtest.config.*: the flags alone
    expect(process.cwd()).toBe(join(import.meta.dirname, '../../..'));
    const options = await matrixOptionsFrom(['true'], flags({ mount: ['fixtures:/fixtures', 'a:b:/c'], push: ['src:/src'], capsule: 'always' }));
    expect(options).toMatchObject({ mounts: { fixtures: '/fixtures', 'a:b': '/c' }, push: { src: '/src' }, capsule: 'always', run: ['true'] });
    expect((await matrixOptionsFrom(['true'], flags())).capsule).toBeUndefined();
  });
});
