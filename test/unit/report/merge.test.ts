import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isKvmtestError } from '../../../src/errors.js';
import type { CellResult, MatrixReport } from '../../../src/matrix/types.js';
import { mergeReports, readReportFile } from '../../../src/report/merge.js';
import { debian11, debian12, debian13, fedora41, report, ubuntu24 } from '../fixtures/sample-run.js';

describe('mergeReports', () => {
  const five = report([debian11, debian12, debian13, fedora41, ubuntu24], { matrixKey: 'mk-5' });
  const shard = (index: number, cells: CellResult[], extra: Partial<MatrixReport> = {}) => report(cells, { matrixKey: 'mk-5', allCellIds: five.allCellIds, shards: [`${index}/2`], ...extra });
  const shard1 = shard(1, [debian11, debian13, ubuntu24], { startedAt: '2025-05-01T10:00:05.000Z', durationMs: 310_000 });
  const shard2 = shard(2, [debian12, fedora41], { startedAt: '2025-05-01T10:00:01.000Z', durationMs: 40_000 });

  const rejection = (fn: () => unknown) => {
    try {
      fn();
    } catch (error) {
      if (isKvmtestError(error)) return { code: error.code, message: error.message };
      throw error;
    }
    throw new Error('expected a KvmtestError');
  };

  it('merges two shards into the full report', () => {
    const merged = mergeReports([shard2, shard1]);
    expect(merged.cells.map((c) => c.id)).toEqual(five.allCellIds);
    expect(merged.totals).toEqual(five.totals);
    expect(merged.ok).toBe(false);
    expect(merged.shards).toEqual(['1/2', '2/2']);
    expect(merged.startedAt).toBe('2025-05-01T10:00:01.000Z');
    expect(merged.durationMs).toBe(310_000);
    expect(merged.host).toBe(shard2.host);
    expect(merged.matrixKey).toBe('mk-5');
  });

  it('rejects overlapping shards', () => {
    const error = rejection(() => mergeReports([shard1, shard(2, [debian12, fedora41, ubuntu24])]));
    expect(error.code).toBe('REPORT_INVALID');
    expect(error.message).toContain('ubuntu-24.04 is in both input[0] and input[1]');
  });

  it('rejects reports of different matrices', () => {
    const error = rejection(() => mergeReports([shard1, { ...shard2, matrixKey: 'other' }], ['a.json', 'b.json']));
    expect(error.code).toBe('REPORT_INVALID');
    expect(error.message).toContain('input[1] (b.json)');
    expect(error.message).toContain('different matrices');
  });

  it('rejects inputs that are not reports, naming the input and the problem', () => {
    expect(rejection(() => mergeReports([shard1, { kind: 'something' }]))).toEqual({
      code: 'REPORT_INVALID',
      message: expect.stringContaining('input[1]: "kind" is "something"'),
    });
    expect(rejection(() => mergeReports([{ ...shard1, version: 2 }])).message).toContain('"version" is 2');
    expect(rejection(() => mergeReports([{ ...shard1, cells: undefined }])).message).toContain('"cells" is not an array');
    expect(rejection(() => mergeReports([])).code).toBe('REPORT_INVALID');
  });

  it('rejects a cell whose capsule or console log is not what kvmtest writes (the HTML page reads them)', () => {
    for (const capsule of ['x', { dir: 42 }, { dir: '/c', bytes: '1', tookMs: 1 }, null]) {
      const bad = { ...shard1, cells: shard1.cells.map((c, i) => (i === 0 ? { ...c, capsule } : c)) };
      expect(rejection(() => mergeReports([bad])).message).toMatch(/has a "capsule" that is neither/);
    }
    const bad = { ...shard1, cells: shard1.cells.map((c, i) => (i === 0 ? { ...c, consoleLog: { path: '/x' } } : c)) };
    expect(rejection(() => mergeReports([bad])).message).toMatch(/"consoleLog" that is not a path/);
    const good = { ...shard1, cells: shard1.cells.map((c, i) => (i === 0 ? { ...c, capsule: { dir: '/out/cells/x/capsule', bytes: 1, tookMs: 2 } } : c)) };
    expect(mergeReports([good]).cells[0]!.capsule).toEqual({ dir: '/out/cells/x/capsule', bytes: 1, tookMs: 2 });
  });

  it('rejects cells and cases the reporters could not render, naming the cell and the case', () => {
    const withCases = (cases: unknown[]) => ({ ...shard1, cells: shard1.cells.map((c, i) => (i === 0 ? { ...c, cases } : c)) });
    expect(rejection(() => mergeReports([withCases([null])])).message).toContain('cell debian-11: cases[0] is not an object');
    expect(
      rejection(() =>
        mergeReports([
          withCases([
            { name: 'a', status: 'passed' },
            { name: 'b', status: 'bogus' },
          ]),
        ]),
      ).message,
    ).toContain('cases[1] has an unknown status "bogus"');
    expect(rejection(() => mergeReports([withCases([{ status: 'failed' }])])).message).toContain('cases[0] has no "name"');
    expect(rejection(() => mergeReports([withCases([{ name: 'a', status: 'failed', message: 42 }])])).message).toContain('has a "message" that is not text');
    const noAxes = { ...shard1, cells: shard1.cells.map((c, i) => (i === 0 ? { ...c, axes: undefined } : c)) };
    expect(rejection(() => mergeReports([noAxes])).message).toContain('lacks its "image" or "axes"');
    // a case without a suite or file (older or hand-made reports) is fine
    expect(mergeReports([withCases([{ name: 'a', status: 'failed' }])]).cells[0]!.cases).toEqual([{ name: 'a', status: 'failed' }]);
  });

  it('checks a report of many cells in linear time', () => {
    const ids = Array.from({ length: 50_000 }, (_, i) => `img-${i}`);
    const cells = ids.map((id) => ({ ...debian12, id, image: id }));
    const merged = mergeReports([report(cells, { matrixKey: 'mk', allCellIds: ids })]);
    expect(merged.cells).toHaveLength(50_000);
  });

  it('turns cells no shard ran into SHARD_MISSING errors', () => {
    const matrix = report([debian12, { ...ubuntu24, id: 'ubuntu-24.04/cpus=2', axes: { cpus: 2 } }], { matrixKey: 'mk-2' });
    const merged = mergeReports([{ ...report([debian12], { matrixKey: 'mk-2', allCellIds: matrix.allCellIds, shards: ['1/2'] }) }]);
    expect(merged.ok).toBe(false);
    expect(merged.totals).toMatchObject({ cells: 2, passed: 1, error: 1 });
    expect(merged.cells[1]).toEqual({
      id: 'ubuntu-24.04/cpus=2',
      image: 'ubuntu-24.04',
      axes: { cpus: 2 },
      status: 'error',
      exitCode: null,
      error: { code: 'SHARD_MISSING', message: 'no shard report contains this cell; did a CI job fail before writing its report?' },
      durations: { total: 0 },
      attempts: [],
      stdoutTail: '',
      stderrTail: '',
      cases: [],
    });
  });

  it('reads report files, rejecting bad JSON with the path', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kvmtest-report-'));
    try {
      const good = join(dir, 'shard-1.json');
      const bad = join(dir, 'shard-2.json');
      await writeFile(good, JSON.stringify(shard1));
      await writeFile(bad, '{"kind": "kvmtest-matrix-rep');
      expect(await readReportFile(good)).toEqual(shard1);
      await expect(readReportFile(bad)).rejects.toMatchObject({ code: 'REPORT_INVALID', message: expect.stringContaining(bad) });
      await expect(readReportFile(join(dir, 'nope.json'))).rejects.toMatchObject({ code: 'REPORT_INVALID' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
