import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseVary } from '../../../src/cli/matrix.js';
import { InputError } from '../../../src/errors.js';
import { expandMatrix } from '../../../src/matrix/expand.js';
import { parseAxisValue } from '../../../src/matrix/grid.js';
import { DEFAULT_CELL_TIMEOUT_MS, defaultCapsule, resolveMatrixGrid, resolveMatrixOptions } from '../../../src/matrix/options.js';
import type { MatrixOptions } from '../../../src/matrix/types.js';

const base: MatrixOptions = { images: ['debian-12'], run: ['true'] };

// the capsule default follows $CI: these tests run as on a workstation unless one says otherwise
beforeEach(() => {
  vi.stubEnv('CI', '');
});
afterEach(() => {
  vi.unstubAllEnvs();
});

/** What resolve threw: its code, class and message. */
function refusal(options: unknown): { code: string; message: string; input: boolean } {
  try {
    resolveMatrixOptions(options as MatrixOptions);
  } catch (error) {
    const { code, message } = error as { code: string; message: string };
    return { code, message, input: error instanceof InputError };
  }
  throw new Error(`resolved without complaint: ${JSON.stringify(options)}`);
}

describe('resolveMatrixOptions: every bad value is INVALID_OPTION naming its option path, what was expected and what came', () => {
  it.each<[string, Record<string, unknown>, string]>([
    ['images', { images: undefined }, 'Expected the "images" option to be a non-empty array of image names or paths, got undefined (undefined)'],
    ['images', { images: [] }, 'Expected the "images" option to be a non-empty array of image names or paths, got [] (object)'],
    ['images', { images: 'debian-12' }, 'got "debian-12" (string)'],
    ['images', { images: ['debian-12', ''] }, '"images" option'],
    ['images', { images: ['/a/disk.qcow2', '/b/disk.qcow2'] }, 'both give the cell id "disk.qcow2"'],
    ['vary', { vary: [1] }, 'Expected the "vary" option to be an object of axis → values, got [1] (object)'],
    ['vary.node', { vary: { node: 3 } }, 'Expected the "vary.node" option to be a non-empty array of strings, numbers or booleans, got 3 (number)'],
    ['vary.cpus', { vary: { cpus: [] } }, '"vary.cpus" option'],
    ['vary.cpus', { vary: { cpus: [{}] } }, '"vary.cpus" option'],
    ['vary.cpus', { vary: { cpus: [Number.NaN] } }, '"vary.cpus" option'],
    ['vary', { vary: { 'no spaces': [1] } }, 'Expected the "vary" option to be an object whose axis names are identifiers other than "image" (letters, digits, _), got "no spaces" (string)'],
    ['vary', { vary: { image: ['x'] } }, 'got "image" (string)'],
    ['include', { include: {} }, 'Expected the "include" option to be an array of objects'],
    ['include[0].image', { include: [{ cpus: 2 }] }, 'Expected the "include[0].image" option to be an image name or path'],
    ['include[1]', { include: [{ image: 'debian-11' }, { image: 'debian-11', 'a b': 1 }] }, 'Expected the "include[1]" option'],
    ['exclude', { exclude: [null] }, 'Expected the "exclude" option to be an array of objects'],
    ['exclude[0].cpus', { exclude: [{ cpus: [1] }] }, 'Expected the "exclude[0].cpus" option to be a string, number or boolean, got [1] (object)'],
    ['exclude', { exclude: [{ image: 'debian-12' }] }, 'the matrix is empty'],
    ['run', { run: undefined }, 'Expected the "run" option to be a command: an array of strings or a shell string, got undefined (undefined)'],
    ['run', { run: [] }, '"run" option'],
    ['run', { run: '  ' }, '"run" option'],
    ['run', { run: ['npm', 1] }, '"run" option'],
    ['push', { push: ['x'] }, 'Expected the "push" option to be an object of strings (host path → guest path), got ["x"] (object)'],
    ['push', { push: { '.': 'relative' } }, 'destinations are absolute guest paths'],
    ['mounts', { mounts: { '.': 'relative' } }, 'mount points are absolute guest paths'],
    ['push', { push: { '.': 1 } }, '"push" option'],
    ['env', { env: { A: 1 } }, 'Expected the "env" option to be an object of strings (name → value), got {"A":1} (object)'],
    ['env', { env: 'A=1' }, '"env" option'],
    ['collect', { collect: ['results.xml'] }, 'Expected the "collect" option to be an array of absolute guest paths, got ["results.xml"] (object)'],
    ['collect', { collect: '/results' }, '"collect" option'],
    ['node', { node: 'bun' }, 'Expected the "node" option to be \'host\' or \'guest\', got "bun" (string)'],
    ['concurrency', { concurrency: 0 }, 'Expected the "concurrency" option to be \'auto\' or a whole number ≥ 1, got 0 (number)'],
    ['concurrency', { concurrency: 1.5 }, '"concurrency" option'],
    ['concurrency', { concurrency: Number.NaN }, '"concurrency" option'],
    ['concurrency', { concurrency: '2' }, '"concurrency" option'],
    ['timeout', { timeout: 'soon' }, 'Expected the "timeout" option to be a duration'],
    ['timeout', { timeout: 0 }, 'Expected the "timeout" option to be a positive duration, got 0 (number)'],
    ['timeout', { timeout: -5 }, '"timeout" option'],
    ['retries', { retries: -1 }, 'Expected the "retries" option to be a whole number from 0 to 10, got -1 (number)'],
    ['retries', { retries: 11 }, '"retries" option'],
    ['retries', { retries: Number.NaN }, '"retries" option'],
    ['failFast', { failFast: 'yes' }, 'Expected the "failFast" option to be a boolean, got "yes" (string)'],
    ['shard', { shard: '3/2' }, 'Expected the "shard" option to be i/n with 1 ≤ i ≤ n (such as 2/4), got "3/2" (string)'],
    ['shard', { shard: { index: 0, count: 2 } }, '"shard" option'],
    ['boot', { boot: 'fast' }, 'Expected the "boot" option to be an object of boot options'],
    ['boot', { boot: [] }, '"boot" option'],
    ['snapshot', { snapshot: 'no' }, 'Expected the "snapshot" option to be a boolean, got "no" (string)'],
    ['capsule', { capsule: 'on-fail' }, "Expected the \"capsule\" option to be 'on-failure', 'always' or 'never', got \"on-fail\" (string)"],
    ['capsule', { capsule: true }, '"capsule" option'],
    ['capsule', { capsule: ['always'] }, '"capsule" option'],
    ['cwd', { cwd: 3 }, 'Expected the "cwd" option to be a non-empty path, got 3 (number)'],
    ['outDir', { outDir: '' }, 'Expected the "outDir" option to be a non-empty path, got "" (string)'],
    ['projectDir', { projectDir: null }, 'Expected the "projectDir" option to be a non-empty path, got null (object)'],
  ])('%s: %j', (path, patch, message) => {
    const refused = refusal({ ...base, ...patch });
    expect(refused.code).toBe('INVALID_OPTION');
    expect(refused.input).toBe(true);
    expect(refused.message).toContain(message);
    expect(refused.message).toMatch(/^Expected the "[^"]+" option to be .+, got .+ \(\w+\)$/s);
    expect(refused.message).toContain(`"${path}"`);
  });

  it('refuses what is not an object at all', () => {
    for (const bad of [undefined, null, 'debian-12', ['debian-12']]) {
      expect(refusal(bad)).toMatchObject({ code: 'INVALID_OPTION', message: expect.stringContaining('"options" option to be an object of matrix options') });
    }
  });
});

describe('resolveMatrixOptions: defaults filled, valid input kept', () => {
  it('fills every default', () => {
    const resolved = resolveMatrixOptions(base);
    expect(resolved).toStrictEqual({
      images: ['debian-12'],
      vary: {},
      include: [],
      exclude: [],
      cells: [{ id: 'debian-12', image: 'debian-12', axes: {} }],
      run: ['true'],
      push: {},
      mounts: {},
      env: {},
      cwd: undefined,
      collect: [],
      node: 'guest',
      concurrency: 'auto',
      timeoutMs: DEFAULT_CELL_TIMEOUT_MS,
      retries: 0,
      failFast: false,
      shard: { index: 1, count: 1 },
      boot: {},
      snapshot: true,
      capsule: 'never',
      capsuleEnv: false,
      capsuleBudgetMiB: 8192,
      setup: undefined,
      outDir: undefined,
      projectDir: process.cwd(),
      onEvent: undefined,
      signal: undefined,
    });
  });

  it('setup: checked once, its push sources made absolute against projectDir', () => {
    const resolved = resolveMatrixOptions({ images: ['debian-12'], run: 'true', projectDir: '/src/app', setup: { push: { 'vendor/': '/opt/vendor' }, run: 'make deps' } });
    expect(resolved.setup).toEqual({ push: { '/src/app/vendor': '/opt/vendor' }, run: 'make deps' });
    expect(() => resolveMatrixOptions({ images: ['debian-12'], run: 'true', setup: { run: '' } })).toThrowError(
      expect.objectContaining({ code: 'INVALID_OPTION', message: expect.stringMatching(/"setup.run"/) }),
    );
  });

  it('keeps every valid value as given (durations and shards in their resolved form)', () => {
    const onEvent = () => {};
    const signal = new AbortController().signal;
    const raw: MatrixOptions = {
      images: ['debian-11', 'debian-12'],
      vary: { cpus: [1, 2], big: [true] },
      exclude: [{ image: 'debian-11', cpus: 2 }],
      include: [{ image: 'debian-13', cpus: 4 }],
      run: 'npm test',
      push: { '.': '/work' },
      env: { CI: '1' },
      cwd: '/work',
      collect: ['/work/junit.xml'],
      node: 'host',
      concurrency: 3,
      timeout: '15m',
      retries: 2,
      failFast: true,
      shard: { index: 2, count: 3 },
      boot: { memory: '2G', accel: 'tcg' },
      snapshot: false,
      capsule: 'always',
      outDir: '/tmp/out',
      projectDir: '/src/app',
      onEvent,
      signal,
    };
    const copy = structuredClone({ ...raw, onEvent: undefined, signal: undefined });
    const resolved = resolveMatrixOptions(raw);
    expect(resolved).toMatchObject({
      images: raw.images,
      vary: raw.vary,
      include: raw.include,
      exclude: raw.exclude,
      run: 'npm test',
      push: raw.push,
      env: raw.env,
      cwd: '/work',
      collect: raw.collect,
      node: 'host',
      concurrency: 3,
      timeoutMs: 15 * 60_000,
      retries: 2,
      failFast: true,
      shard: { index: 2, count: 3 },
      boot: raw.boot,
      snapshot: false,
      capsule: 'always',
      outDir: '/tmp/out',
      projectDir: '/src/app',
    });
    expect(resolved.onEvent).toBe(onEvent);
    expect(resolved.signal).toBe(signal);
    expect(resolved.cells.map((c) => c.id)).toEqual(['debian-11/cpus=1/big=true', 'debian-12/cpus=1/big=true', 'debian-12/cpus=2/big=true', 'debian-13/cpus=4']);
    // the raw options are read, never written
    expect({ ...raw, onEvent: undefined, signal: undefined }).toStrictEqual(copy);
  });

  it('is idempotent: resolving the resolved options gives the same configuration', () => {
    const once = resolveMatrixOptions({ ...base, vary: { cpus: [1, 2] }, timeout: 5000, shard: '1/2' });
    const { timeoutMs, ...rest } = once;
    expect(resolveMatrixOptions({ ...rest, timeout: timeoutMs } as never)).toStrictEqual(once);
  });

  it('the grid alone resolves to the same cells expandMatrix gives', () => {
    const grid = { images: ['debian-12', '/img/alma-9.qcow2'], vary: { memory: ['512M', '1G'] } };
    expect(resolveMatrixGrid(grid).cells).toEqual(expandMatrix(grid));
    expect(() => expandMatrix({ images: [] })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION', message: expect.stringContaining('"images" option') }));
  });
});

describe('axis values written as text: one parser for --vary and cell ids', () => {
  it('numbers and booleans where the text is one, else the text', () => {
    expect(['1', '-2', '0.5', 'true', 'false', '512M', '1.2.3', 'True', ''].map(parseAxisValue)).toEqual([1, -2, 0.5, true, false, '512M', '1.2.3', 'True', '']);
  });

  it('--vary reads its values with it', () => {
    expect(parseVary('x=1,true,abc')).toEqual(['x', [1, true, 'abc']]);
  });
});

describe('matrix options', () => {
  const base = { images: ['debian-12'], run: ['true'] };

  it('defaults: guest node, auto concurrency, 30 min per cell, no retries, whole matrix', () => {
    expect(resolveMatrixOptions(base)).toEqual({
      run: ['true'],
      node: 'guest',
      concurrency: 'auto',
      timeoutMs: 1_800_000,
      retries: 0,
      failFast: false,
      shard: { index: 1, count: 1 },
      // the resolved options are complete: the grid with its cells, and every other option defaulted
      images: ['debian-12'],
      vary: {},
      include: [],
      exclude: [],
      cells: [{ id: 'debian-12', image: 'debian-12', axes: {} }],
      push: {},
      mounts: {},
      env: {},
      collect: [],
      boot: {},
      snapshot: true,
      capsule: 'never',
      capsuleEnv: false,
      capsuleBudgetMiB: 8192,
      projectDir: process.cwd(),
    });
  });

  it('rejects each bad option with a code and the option named', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ run: [] }, /"run"/],
      [{ run: '  ' }, /"run"/],
      [{ push: { '.': 'relative' } }, /absolute/],
      [{ push: ['x'] }, /"push"/],
      [{ collect: ['results.xml'] }, /"collect"/],
      [{ node: 'bun' }, /"node"/],
      [{ concurrency: 0 }, /"concurrency"/],
      [{ retries: -1 }, /"retries"/],
      [{ failFast: 'yes' }, /"failFast"/],
      [{ env: { A: 1 } }, /"env"/],
    ];
    for (const [patch, message] of cases) {
      expect(() => resolveMatrixOptions({ ...base, ...patch } as never), JSON.stringify(patch)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION', message: expect.stringMatching(message) }));
    }
    expect(() => resolveMatrixOptions({ ...base, timeout: 'soon' })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });
});

describe('the capsule option', () => {
  it.each<[NodeJS.ProcessEnv, 'on-failure' | 'never']>([
    [{}, 'never'],
    [{ CI: '' }, 'never'],
    [{ CI: 'false' }, 'never'],
    [{ CI: '0' }, 'never'],
    [{ CI: 'true' }, 'on-failure'],
    [{ CI: '1' }, 'on-failure'],
    [{ CI: 'woodpecker' }, 'on-failure'],
    [{ GITHUB_ACTIONS: 'true' }, 'never'],
  ])('defaultCapsule(%j) → %s', (env, expected) => {
    expect(defaultCapsule(env)).toBe(expected);
  });

  it('the default follows $CI: on-failure in CI, never elsewhere', () => {
    expect(resolveMatrixOptions(base).capsule).toBe('never');
    vi.stubEnv('CI', 'true');
    expect(resolveMatrixOptions(base).capsule).toBe('on-failure');
    vi.stubEnv('CI', 'false');
    expect(resolveMatrixOptions(base).capsule).toBe('never');
  });

  it.each(['on-failure', 'always', 'never'] as const)('%s is kept as given, whatever $CI says', (capsule) => {
    vi.stubEnv('CI', 'true');
    expect(resolveMatrixOptions({ ...base, capsule }).capsule).toBe(capsule);
    vi.stubEnv('CI', '');
    expect(resolveMatrixOptions({ ...base, capsule }).capsule).toBe(capsule);
  });

  it('an invalid value is INVALID_OPTION even under CI', () => {
    vi.stubEnv('CI', 'true');
    expect(refusal({ ...base, capsule: 'sometimes' })).toMatchObject({ code: 'INVALID_OPTION', input: true, message: expect.stringContaining('"capsule" option') });
  });
});
