import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chooseReporters, parseVary } from '../../../src/cli/matrix.js';
import { cellBootOptions, cellEnv, judgeAttempt } from '../../../src/matrix/cell.js';
import { decideConcurrency, MemoryBudget } from '../../../src/matrix/concurrency.js';
import { loadConfig } from '../../../src/matrix/config.js';
import { cellId, expandMatrix } from '../../../src/matrix/expand.js';
import { explainNodeFailure } from '../../../src/matrix/host-node.js';
import { resolveMatrixOptions } from '../../../src/matrix/options.js';
import { matrixKey } from '../../../src/matrix/run.js';
import { runPool } from '../../../src/matrix/schedule.js';
import { parseShard, shardCells } from '../../../src/matrix/shard.js';
import type { TestCase } from '../../../src/matrix/types.js';

const GiB = 1024;

describe('expandMatrix', () => {
  it('crosses images with axes in a stable, readable order', () => {
    const cells = expandMatrix({ images: ['debian-11', 'debian-12'], vary: { cpus: [1, 2], memory: ['512M'] } });
    expect(cells.map((c) => c.id)).toEqual([
      'debian-11/cpus=1/memory=512M',
      'debian-11/cpus=2/memory=512M',
      'debian-12/cpus=1/memory=512M',
      'debian-12/cpus=2/memory=512M',
    ]);
    expect(cells[1]).toEqual({ id: 'debian-11/cpus=2/memory=512M', image: 'debian-11', axes: { cpus: 2, memory: '512M' } });
  });

  it('names a one-axis matrix by image alone, and a path by its file name', () => {
    expect(expandMatrix({ images: ['debian-13', '/var/img/alma-9.qcow2'] }).map((c) => c.id)).toEqual(['debian-13', 'alma-9.qcow2']);
    expect(cellId('debian-12', { cpus: 2, big: true })).toBe('debian-12/cpus=2/big=true');
  });

  it('drops excluded cells and adds included ones once', () => {
    const cells = expandMatrix({
      images: ['debian-11', 'debian-12'],
      vary: { cpus: [1, 2] },
      exclude: [{ image: 'debian-11', cpus: 2 }, { cpus: 1, image: 'debian-12' }],
      include: [{ image: 'debian-13', cpus: 4 }, { image: 'debian-11', cpus: 1 }],
    });
    expect(cells.map((c) => c.id)).toEqual(['debian-11/cpus=1', 'debian-12/cpus=2', 'debian-13/cpus=4']);
  });

  it('rejects bad matrices with CONFIG_INVALID', () => {
    for (const bad of [
      { images: [] },
      { images: ['debian-12', ''] },
      { images: ['debian-12'], vary: { cpus: [] } },
      { images: ['debian-12'], vary: { 'no spaces': [1] } },
      { images: ['debian-12'], vary: { image: ['x'] } },
      { images: ['debian-12'], vary: { cpus: [{}] } },
      { images: ['debian-12'], exclude: [{ image: 'debian-12' }] },
      { images: ['debian-12'], include: [{ cpus: 2 }] },
      { images: ['/a/disk.qcow2', '/b/disk.qcow2'] },
    ]) {
      expect(() => expandMatrix(bad as never), JSON.stringify(bad)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
    }
  });
});

describe('sharding', () => {
  const cells = expandMatrix({ images: ['debian-11', 'debian-12', 'debian-13'], vary: { cpus: [1, 2, 4], memory: ['512M', '2G'] } });

  it.each([1, 2, 3, 4, 5, 6, 7])('puts every cell in exactly one of %i shards', (count) => {
    const seen = new Map<string, number>();
    for (let index = 1; index <= count; index++) for (const cell of shardCells(cells, { index, count })) seen.set(cell.id, (seen.get(cell.id) ?? 0) + 1);
    expect(seen.size).toBe(cells.length);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    const sizes = Array.from({ length: count }, (_, i) => shardCells(cells, { index: i + 1, count }).length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
  });

  it('is deterministic and spreads images across shards', () => {
    expect(shardCells(cells, { index: 2, count: 3 })).toEqual(shardCells(cells, parseShard('2/3')));
    const small = expandMatrix({ images: ['debian-11', 'debian-12', 'debian-13'] });
    expect(shardCells(small, parseShard('1/2')).map((c) => c.id)).toEqual(['debian-11', 'debian-13']);
    expect(shardCells(small, parseShard('2/2')).map((c) => c.id)).toEqual(['debian-12']);
  });

  it('rejects shards out of range', () => {
    for (const bad of ['0/2', '3/2', '1/0', 'a/b', '1-2', '']) expect(() => parseShard(bad), bad).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });
});

describe('decideConcurrency', () => {
  const host = (cpus: number, freeGiB: number, totalGiB = 32) => ({ cpus, freeMemMiB: freeGiB * GiB, totalMemMiB: totalGiB * GiB });
  const guests = (n: number, cpus: number, memoryMiB: number) => Array.from({ length: n }, () => ({ cpus, memoryMiB }));

  it('fits the CPUs: this 2-core host runs one 2-vCPU guest, two 1-vCPU guests', () => {
    expect(decideConcurrency('auto', host(2, 20, 24), guests(3, 2, 1024)).concurrency).toBe(1);
    expect(decideConcurrency('auto', host(2, 20, 24), guests(3, 1, 1024)).concurrency).toBe(2);
    expect(decideConcurrency('auto', host(16, 60, 64), guests(12, 2, 1024)).concurrency).toBe(8);
  });

  it('fits the free memory with each guest counted whole, never below one', () => {
    // 8 GiB free - 3.2 GiB reserve (10% of 32) = 4.8 GiB for 4 GiB + 256 MiB guests: one
    const decision = decideConcurrency('auto', host(32, 8), guests(8, 1, 4 * GiB));
    expect(decision.concurrency).toBe(1);
    expect(decision.reason).toMatch(/MiB free/);
    expect(decideConcurrency('auto', host(32, 1), guests(2, 1, 4 * GiB)).concurrency).toBe(1);
  });

  it('never exceeds the number of cells, and takes a number as asked', () => {
    expect(decideConcurrency('auto', host(64, 200, 256), guests(3, 1, 512)).concurrency).toBe(3);
    expect(decideConcurrency(6, host(2, 20), guests(8, 2, 1024)).concurrency).toBe(6);
    expect(decideConcurrency(6, host(2, 20), guests(2, 2, 1024)).concurrency).toBe(2);
  });
});

describe('MemoryBudget and runPool', () => {
  it('waits instead of overcommitting, and lets one big guest run alone', async () => {
    const budget = new MemoryBudget(3000);
    let running = 0;
    let peakMiB = 0;
    let peakRunning = 0;
    const sizes = [1000, 1000, 1000, 1000, 5000, 1000, 1000, 1000];
    const results = await runPool(sizes, { concurrency: 8, memory: budget, footprint: (s) => s }, async (size) => {
      running++;
      peakRunning = Math.max(peakRunning, running);
      peakMiB = Math.max(peakMiB, budget.inUseMiB);
      await new Promise((r) => setTimeout(r, 5));
      running--;
      return size * 2;
    }, () => -1);
    expect(results).toEqual(sizes.map((s) => s * 2));
    expect(peakRunning).toBe(3);
    expect(peakMiB).toBeLessThanOrEqual(5000);
  });

  it('skips what has not started once the signal aborts', async () => {
    const controller = new AbortController();
    const results = await runPool([1, 2, 3, 4], { concurrency: 1, memory: new MemoryBudget(10), footprint: () => 1, signal: controller.signal }, async (n) => {
      if (n === 2) controller.abort();
      return `ran ${n}`;
    }, (n) => `skipped ${n}`);
    expect(results).toEqual(['ran 1', 'ran 2', 'skipped 3', 'skipped 4']);
  });
});

describe('cells', () => {
  const cell = { id: 'debian-12/cpus=1/suite=fast', image: 'debian-12', axes: { cpus: 1, suite: 'fast' } };

  it('takes boot options from the axes over the shared ones, snapshots by default', () => {
    expect(cellBootOptions(cell, { boot: { cpus: 4, memory: '2G' } })).toEqual({ cpus: 1, memory: '2G', image: 'debian-12', snapshot: true });
    expect(cellBootOptions(cell, { snapshot: false }).snapshot).toBe(false);
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

  it('keys a matrix by its cells and command, so only its own shards merge', () => {
    const cells = expandMatrix({ images: ['debian-11', 'debian-12'] });
    expect(matrixKey(cells, { run: ['npm', 'test'] })).toBe(matrixKey(expandMatrix({ images: ['debian-11', 'debian-12'] }), { run: ['npm', 'test'] }));
    expect(matrixKey(cells, { run: ['npm', 'test'] })).not.toBe(matrixKey(cells, { run: ['make', 'check'] }));
  });
});

describe('matrix options', () => {
  const base = { images: ['debian-12'], run: ['true'] };

  it('defaults: guest node, auto concurrency, 30 min per cell, no retries, whole matrix', () => {
    expect(resolveMatrixOptions(base)).toEqual({ run: ['true'], node: 'guest', concurrency: 'auto', timeoutMs: 1_800_000, retries: 0, failFast: false, shard: { index: 1, count: 1 } });
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
      expect(() => resolveMatrixOptions({ ...base, ...patch } as never), JSON.stringify(patch)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringMatching(message) }));
    }
    expect(() => resolveMatrixOptions({ ...base, timeout: 'soon' })).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });
});

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
  });

  it('loads a TypeScript config, relative to its folder', async () => {
    const dir = join(import.meta.dirname, '../../../fixtures/sample-project');
    const loaded = await loadConfig(undefined, dir);
    expect(loaded?.path).toBe(join(dir, 'kvmtest.config.ts'));
    expect(loaded?.config).toMatchObject({ images: ['debian-11', 'debian-12', 'debian-13'], projectDir: dir, collect: ['/work/results'] });
    const json = await loadConfig('kvmtest.node.json', dir);
    expect(json?.config).toMatchObject({ node: 'host', run: ['npm', 'test'] });
    await expect(loadConfig('missing.json', dir)).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });
});

describe('explainNodeFailure', () => {
  it('names the missing C library versions', () => {
    const stderr = "/opt/kvmtest/node/bin/node: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.28' not found (required by /opt/kvmtest/node/bin/node)\n/opt/kvmtest/node/bin/node: /lib/x86_64-linux-gnu/libstdc++.so.6: version `GLIBCXX_3.4.26' not found";
    const message = explainNodeFailure('v20.20.2', stderr, 'ldd (Debian GLIBC 2.24-11+deb9u4) 2.24');
    expect(message).toMatch(/C library is too old, missing GLIBC_2.28, GLIBCXX_3.4.26 \(guest: ldd \(Debian GLIBC 2.24/);
    expect(message).toMatch(/node: 'guest'/);
  });

  it('recognises a guest without glibc (musl)', () => {
    expect(explainNodeFailure('v20.20.2', 'sh: /opt/kvmtest/node/bin/node: not found (no such interpreter /lib64/ld-linux-x86-64.so.2)', '')).toMatch(/musl/);
  });
});
