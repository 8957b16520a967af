import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isKvmtestError } from '../../../src/errors.js';
import type { CellResult, CellSpec, MatrixEvent, MatrixReport } from '../../../src/matrix/types.js';
import { escapeData, escapeProperty, githubAnnotations, githubSummary } from '../../../src/report/github.js';
import { toJUnit } from '../../../src/report/junit.js';
import { mergeReports, readReportFile } from '../../../src/report/merge.js';
import { formatDuration, summaryTable } from '../../../src/report/table.js';
import { createTerminalReporter } from '../../../src/report/terminal.js';
import { computeTotals, isOk } from '../../../src/report/totals.js';

// A run of `npm test` over four Debian/Fedora guests: one test fails on debian-11, debian-13 never boots,
// fedora-41 passes on its second attempt.
const debian11: CellResult = {
  id: 'debian-11',
  image: 'debian-11',
  axes: {},
  status: 'failed',
  exitCode: 1,
  durations: { boot: 9_400, push: 300, run: 12_345, pull: 100, total: 22_145 },
  attempts: [{ status: 'failed', exitCode: 1, durationMs: 22_145 }],
  stdoutTail: 'ok 1 - adds\nnot ok 2 - parses <tag> & "quotes"\n',
  stderrTail: '\x1b[31mAssertionError\x1b[0m: expected <a> & "b"\x00\n    at parse (src/parse.js:3:9)\n',
  guest: { os: 'Debian GNU/Linux 11 (bullseye)', kernel: '5.10.0-30-cloud-amd64', node: 'v20.19.0' },
  consoleLog: '/tmp/kvmtest-out/debian-11/console.log',
  cases: [
    { name: 'adds', suite: 'math', status: 'passed', durationMs: 3, file: '/work/junit.xml' },
    {
      name: 'parses <tag> & "quotes"',
      suite: 'parser',
      status: 'failed',
      durationMs: 12,
      message: 'expected <a> & "b"',
      details: 'AssertionError: expected <a> & "b"\n    at parse (src/parse.js:3:9)',
      file: '/work/junit.xml',
    },
  ],
};

const debian12: CellResult = {
  id: 'debian-12',
  image: 'debian-12',
  axes: {},
  status: 'passed',
  exitCode: 0,
  durations: { boot: 8_100, run: 11_000, total: 19_900 },
  attempts: [{ status: 'passed', exitCode: 0, durationMs: 19_900 }],
  stdoutTail: 'ok 1 - adds\nok 2 - parses\n',
  stderrTail: '',
  guest: { os: 'Debian GNU/Linux 12 (bookworm)' },
  cases: [
    { name: 'adds', suite: 'math', status: 'passed', durationMs: 2, file: '/work/junit.xml' },
    { name: 'parses <tag> & "quotes"', suite: 'parser', status: 'passed', durationMs: 9, file: '/work/junit.xml' },
    { name: 'ipv6', suite: '', status: 'skipped', message: 'no network', file: '/work/junit.xml' },
  ],
};

const debian13: CellResult = {
  id: 'debian-13',
  image: 'debian-13',
  axes: {},
  status: 'error',
  exitCode: null,
  error: { code: 'BOOT_TIMEOUT', message: 'the guest did not answer within 5m', consoleTail: '[  OK  ] Reached target cloud-init\x1b[0m' },
  durations: { boot: 300_000, total: 300_000 },
  attempts: [{ status: 'error', exitCode: null, error: { code: 'BOOT_TIMEOUT', message: 'the guest did not answer within 5m' }, durationMs: 300_000 }],
  stdoutTail: '',
  stderrTail: '',
  consoleLog: '/tmp/kvmtest-out/debian-13/console.log',
  cases: [],
};

const fedora41: CellResult = {
  id: 'fedora-41',
  image: 'fedora-41',
  axes: {},
  status: 'flaky',
  exitCode: 0,
  durations: { boot: 10_000, run: 5_000, total: 15_000 },
  attempts: [
    { status: 'failed', exitCode: 1, durationMs: 14_000 },
    { status: 'passed', exitCode: 0, durationMs: 15_000 },
  ],
  stdoutTail: 'all good\n',
  stderrTail: '',
  guest: { os: 'Fedora Linux 41 (Cloud Edition)' },
  cases: [],
};

const ubuntu24: CellResult = {
  ...debian12,
  id: 'ubuntu-24.04',
  image: 'ubuntu-24.04',
  guest: { os: 'Ubuntu 24.04.1 LTS' },
};

const host = { hostname: 'ci-runner-7', accel: 'kvm', cpus: 4, memoryMiB: 16_000, node: 'v20.19.0' };

function report(cells: CellResult[], overrides: Partial<MatrixReport> = {}): MatrixReport {
  const totals = computeTotals(cells);
  return {
    kind: 'kvmtest-matrix-report',
    version: 1,
    matrixKey: 'mk-1',
    allCellIds: cells.map((c) => c.id),
    shards: ['1/1'],
    startedAt: '2025-05-01T10:00:00.000Z',
    durationMs: 330_000,
    host,
    cells,
    totals,
    ok: isOk(totals),
    ...overrides,
  };
}

const full = report([debian11, debian12, debian13, fedora41]);

describe('computeTotals / isOk', () => {
  it('counts cells and cases by status', () => {
    expect(full.totals).toEqual({
      cells: 4,
      passed: 1,
      failed: 1,
      error: 1,
      timeout: 0,
      flaky: 1,
      skipped: 0,
      cases: { total: 5, passed: 3, failed: 1, error: 0, skipped: 1 },
    });
    expect(isOk(full.totals)).toBe(false);
  });

  it('treats flaky as ok and failures, errors and timeouts as not', () => {
    expect(isOk(computeTotals([debian12, fedora41]))).toBe(true);
    expect(isOk(computeTotals([{ ...debian12, status: 'timeout' }]))).toBe(false);
    expect(isOk(computeTotals([]))).toBe(true);
  });
});

describe('toJUnit', () => {
  const xml = toJUnit(full);
  const parsed = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '',
    parseAttributeValue: false,
    isArray: (name) => ['testsuite', 'testcase', 'property'].includes(name),
  }).parse(xml) as { testsuites: Record<string, string> & { testsuite: Record<string, any>[] } };
  const suites = parsed.testsuites.testsuite;
  const suite = (id: string) => suites.find((s) => s.name === id)!;

  it('writes one testsuite per cell, named by the cell id, with the counts CI views show', () => {
    expect(suites.map((s) => s.name)).toEqual(['debian-11', 'debian-12', 'debian-13', 'fedora-41']);
    expect(parsed.testsuites).toMatchObject({ name: 'kvmtest', tests: '7', failures: '1', errors: '1', skipped: '1', time: '330.000' });
    expect(suite('debian-11')).toMatchObject({ tests: '2', failures: '1', errors: '0', skipped: '0', time: '22.145', timestamp: full.startedAt });
    expect(suite('debian-12')).toMatchObject({ tests: '3', failures: '0', errors: '0', skipped: '1' });
  });

  it('maps parsed cases with classname cell.suite, failures and skips', () => {
    const cases = suite('debian-11').testcase;
    expect(cases[0]).toMatchObject({ name: 'adds', classname: 'debian-11.math', time: '0.003' });
    expect(cases[1].name).toBe('parses <tag> & "quotes"');
    expect(cases[1].failure.message).toBe('expected <a> & "b"');
    expect(cases[1].failure['#text']).toContain('at parse (src/parse.js:3:9)');
    const skipped = suite('debian-12').testcase[2];
    expect(skipped).toMatchObject({ name: 'ipv6', classname: 'debian-12', skipped: { message: 'no network' } });
  });

  it('reports a cell without cases as a synthetic "run" testcase', () => {
    const [run] = suite('debian-13').testcase;
    expect(run).toMatchObject({ name: 'run', classname: 'debian-13' });
    expect(run.error.message).toBe('BOOT_TIMEOUT: the guest did not answer within 5m');
    expect(run.error['#text']).toBe('[  OK  ] Reached target cloud-init');
    const failedRun = toJUnit(report([{ ...debian11, cases: [] }]));
    expect(failedRun).toContain('<failure message="exit code 1">');
    const errored = toJUnit(report([{ ...debian11, status: 'error', error: { code: 'AGENT_DISCONNECTED', message: 'gone' } }]));
    expect(errored).toMatch(/<testcase name="run"[^>]*>\s*<error message="AGENT_DISCONNECTED: gone">/);
  });

  it('notes flaky cells in system-out while the run passes', () => {
    const flaky = suite('fedora-41');
    expect(flaky).toMatchObject({ tests: '1', failures: '0', errors: '0' });
    expect(flaky['system-out']).toContain('flaky: passed on attempt 2 after failed (exit code 1)');
    expect(flaky['system-out']).toContain('all good');
  });

  it('records the cell in properties', () => {
    const props = Object.fromEntries(
      (suite('debian-11').properties.property as { name: string; value: string }[]).map((p) => [p.name, p.value]),
    );
    expect(props).toMatchObject({ image: 'debian-11', status: 'failed', exitCode: '1', 'guest.os': 'Debian GNU/Linux 11 (bullseye)' });
    const withAxes = toJUnit(
      report([{ ...debian12, id: 'debian-12/cpus=2', axes: { cpus: 2 }, collected: [{ path: '/work/junit.xml', error: 'no such file' }] }]),
    );
    expect(withAxes).toContain('<property name="axis.cpus" value="2"/>');
    expect(withAxes).toContain('<property name="collect.error" value="/work/junit.xml: no such file"/>');
  });

  it('escapes entities and strips ANSI escapes and characters XML 1.0 forbids', () => {
    expect(xml).toContain('name="parses &lt;tag&gt; &amp; &quot;quotes&quot;"');
    expect(xml).not.toContain('\x1b');
    expect(xml).not.toContain('\x00');
    expect(suite('debian-11')['system-err']).toContain('AssertionError: expected <a> & "b"');
  });
});

describe('GitHub', () => {
  it('escapes workflow-command data and properties', () => {
    expect(escapeData('50% done\r\nnext')).toBe('50%25 done%0D%0Anext');
    expect(escapeProperty('debian-12/cpus=2: a, b')).toBe('debian-12/cpus=2%3A a%2C b');
  });

  it('annotates failed cases, failed cells without failed cases, and flaky cells', () => {
    const lines = githubAnnotations(full);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe(
      '::error title=debian-11%3A parses <tag> & "quotes"::expected <a> & "b"%0AAssertionError: expected <a> & "b"%0A    at parse (src/parse.js:3:9)',
    );
    expect(lines[1]).toMatch(/^::error title=debian-13::error: BOOT_TIMEOUT: the guest did not answer within 5m%0A\[  OK  \] Reached target cloud-init$/);
    expect(lines[2]).toBe('::warning title=fedora-41::flaky: passed on attempt 2 after failed (exit code 1)');
    expect(lines.every((line) => !line.includes('\n') && !line.includes('\x1b'))).toBe(true);
  });

  it('writes a step summary with every cell and details of the failed ones', () => {
    const md = githubSummary(full);
    expect(md).toMatch(/^## ❌ kvmtest matrix failed: 4 cells: 1 passed, 1 failed, 1 error, 1 flaky · 5 tests: 3 passed, 1 failed, 1 skipped · 5m30s\n/);
    for (const cell of full.cells) expect(md).toContain(`| ${cell.id} |`);
    expect(md).toContain('| ❌ | debian-11 | Debian GNU/Linux 11 (bullseye) | 1 | 1 | 1 | 0 | 22.1s |');
    expect(md).toContain('<b>parser › parses &lt;tag&gt; &amp; "quotes"</b>: expected &lt;a&gt; &amp; "b"');
    expect(md).toContain('```\nAssertionError: expected <a> & "b"');
    expect(md).toContain('<summary>💥 <b>debian-13</b>: error (BOOT_TIMEOUT: the guest did not answer within 5m)</summary>');
    expect(md.match(/<details>/g)).toHaveLength(2);
    expect(md).not.toContain('\x1b');
  });

  it('keeps Markdown and HTML in names and output from breaking the summary', () => {
    const odd: CellResult = {
      ...debian11,
      cases: [{ name: 'a|b *c* <i>', suite: '', status: 'failed', message: 'x', file: 'r.xml' }],
      stderrTail: 'before\n```\nafter\x00',
    };
    const md = githubSummary(report([odd]));
    expect(md).toContain('- <b>a&#124;b &#42;c&#42; &lt;i&gt;</b>: x');
    expect(md).toContain('````\nbefore\n```\nafter\n````');
  });
});

describe('summaryTable', () => {
  it('aligns a row per cell, then totals and failed cases, without color codes', () => {
    const text = summaryTable(full, { color: false });
    expect(text).not.toContain('\x1b');
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^STATUS\s+CELL\s+OS\s+EXIT\s+TESTS\s+BOOT\s+RUN\s+TOTAL$/);
    expect(lines[1]).toMatch(/^✖ failed\s+debian-11\s+Debian GNU\/Linux 11 \(bullseye\)\s+1\s+1\/2 passed\s+9\.4s\s+12\.3s\s+22\.1s$/);
    expect(lines[2]).toMatch(/^✔ passed\s+debian-12 .*2\/2 passed, 1 skipped/);
    expect(lines[3]).toMatch(/^✖ error\s+debian-13\s+-\s+-\s+-\s+5m00s\s+-\s+5m00s$/);
    expect(lines[4]).toMatch(/^⚠ flaky\s+fedora-41 /);
    // columns line up: every row starts CELL where the header does
    const cellColumn = lines[0]!.indexOf('CELL');
    for (const row of lines.slice(1, 5)) expect(row.slice(cellColumn)).toMatch(/^(debian|fedora)/);
    expect(text).toContain('4 cells: 1 passed, 1 failed, 1 error, 1 flaky · 5 tests: 3 passed, 1 failed, 1 skipped · 5m30s');
    expect(text).toContain('✖ debian-11 › parser › parses <tag> & "quotes": expected <a> & "b"');
    expect(text).toContain('✖ debian-13: BOOT_TIMEOUT: the guest did not answer within 5m');
  });

  it('colors statuses when asked', () => {
    expect(summaryTable(full, { color: true })).toContain('\x1b[32m✔ passed');
  });

  it('formats durations', () => {
    expect([formatDuration(400), formatDuration(41_234), formatDuration(59_990), formatDuration(123_000), formatDuration(3_900_000), formatDuration(undefined)]).toEqual([
      '0.4s',
      '41.2s',
      '1m00s',
      '2m03s',
      '1h05m',
      '-',
    ]);
  });
});

describe('mergeReports', () => {
  const five = report([debian11, debian12, debian13, fedora41, ubuntu24], { matrixKey: 'mk-5' });
  const shard = (index: number, cells: CellResult[], extra: Partial<MatrixReport> = {}) =>
    report(cells, { matrixKey: 'mk-5', allCellIds: five.allCellIds, shards: [`${index}/2`], ...extra });
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

describe('createTerminalReporter', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  const fakeStream = (tty: boolean) => {
    const writes: string[] = [];
    const stream = { isTTY: tty, columns: 80, rows: 24, write: (chunk: string) => (writes.push(chunk), true) };
    return { stream: stream as unknown as NodeJS.WritableStream & { isTTY?: boolean; columns?: number }, writes };
  };
  const spec = (cell: CellResult): CellSpec => ({ id: cell.id, image: cell.image, axes: cell.axes });
  const events = (report: MatrixReport): MatrixEvent[] => [
    { type: 'start', cells: report.cells.map(spec), concurrency: 2, shard: '1/1' },
    { type: 'phase', cell: spec(debian11), phase: 'boot', attempt: 1 },
    { type: 'phase', cell: spec(debian12), phase: 'boot', attempt: 1 },
    { type: 'output', cell: spec(debian11), stream: 'stdout', line: 'ok 1 - adds' },
    { type: 'phase', cell: spec(debian11), phase: 'run', attempt: 1 },
    { type: 'cell-done', result: debian11 },
    { type: 'cell-done', result: debian12 },
    { type: 'cell-done', result: debian13 },
    { type: 'cell-done', result: fedora41 },
    { type: 'end', report },
  ];

  it('prints a line per phase change and finished cell, then the summary table (plain mode)', () => {
    vi.useFakeTimers({ now: 0 });
    const { stream, writes } = fakeStream(false);
    const reporter = createTerminalReporter(stream, { live: false, color: false });
    for (const event of events(full)) {
      if (event.type === 'phase' && event.phase === 'run') vi.setSystemTime(12_300);
      reporter.onEvent(event);
    }
    const text = writes.join('');
    expect(text).not.toContain('\x1b');
    expect(text).not.toContain('ok 1 - adds');
    expect(text).toContain('kvmtest: 4 cells, 2 at a time\n');
    expect(text).toContain('[debian-11] boot\n[debian-12] boot\n[debian-11] run 12.3s\n');
    expect(text).toContain('✖ debian-11 failed 22.1s · exit code 1, 1 of 2 tests failed\n');
    expect(text).toContain('✔ debian-12 passed 19.9s\n');
    expect(text).toContain('✖ debian-13 error 5m00s · BOOT_TIMEOUT: the guest did not answer within 5m\n');
    expect(text).toContain('⚠ fedora-41 flaky 15.0s · passed on attempt 2\n');
    expect(text).toContain(summaryTable(full, { color: false }));
    expect(vi.getTimerCount()).toBe(0);
  });

  it('prints prepare messages', () => {
    const { stream, writes } = fakeStream(false);
    const reporter = createTerminalReporter(stream, { live: false, color: false });
    reporter.onEvent({ type: 'prepare', message: 'making a warm snapshot of debian-12' });
    expect(writes.join('')).toBe('making a warm snapshot of debian-12\n');
  });

  it('prints output lines when verbose', () => {
    const { stream, writes } = fakeStream(false);
    const reporter = createTerminalReporter(stream, { live: false, verbose: true, color: false });
    reporter.onEvent({ type: 'output', cell: spec(debian11), stream: 'stderr', line: 'boom' });
    expect(writes.join('')).toBe('[debian-11 stderr] boom\n');
  });

  it('redraws a block of running cells in live mode and stops its timer on close', () => {
    vi.useFakeTimers({ now: 0 });
    const { stream, writes } = fakeStream(true);
    const reporter = createTerminalReporter(stream, { live: true, color: false });
    const [start, boot11, boot12] = events(full);
    reporter.onEvent(start!);
    reporter.onEvent(boot11!);
    reporter.onEvent(boot12!);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(2_000);
    const frame = writes.at(-1)!;
    expect(frame).toMatch(/^\x1b\[4A\r/); // back to the top of the 4-line block
    expect(frame).toContain('debian-11  boot 2.0s');
    expect(frame).toContain('debian-13  queued');
    reporter.onEvent({ type: 'cell-done', result: debian12 });
    expect(writes.at(-1)).toContain('\x1b[2K✔ debian-12 passed 19.9s\n');
    reporter.close();
    expect(vi.getTimerCount()).toBe(0);
    expect(writes.at(-1)).toMatch(/^\x1b\[3A\r\x1b\[J$/); // block erased, finished lines kept
    reporter.close();
    reporter.onEvent({ type: 'cell-done', result: debian11 });
    expect(writes.at(-1)).toMatch(/^\x1b\[3A\r\x1b\[J$/);
  });
});
