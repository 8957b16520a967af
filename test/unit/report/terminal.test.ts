import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CellResult, CellSpec, MatrixEvent, MatrixReport } from '../../../src/matrix/types.js';
import { summaryTable } from '../../../src/report/table.js';
import { createTerminalReporter } from '../../../src/report/terminal.js';
import { captureStream } from '../fixtures/capture-stream.js';
import { HOSTILE } from '../fixtures/hostile.js';
import { debian11, debian12, debian13, fedora41, full } from '../fixtures/sample-run.js';

describe('createTerminalReporter', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  const fakeStream = (tty: boolean) => {
    const writes: string[] = [];
    const write = (chunk: string) => {
      writes.push(chunk);
      return true;
    };
    const stream = { isTTY: tty, columns: 80, rows: 24, write };
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

describe('reports of hostile guest text', () => {
  it('verbose output lines are sanitized, and fenced with stop-commands under GitHub Actions', () => {
    const { stream, written } = captureStream();
    const reporter = createTerminalReporter(stream, { live: false, verbose: true, github: true });
    const spec = { id: 'debian-12' } as never;
    reporter.onEvent({ type: 'output', cell: spec, stream: 'stdout', line: `${HOSTILE.setEnv}${HOSTILE.title}` } as never);
    reporter.onEvent({ type: 'output', cell: spec, stream: 'stderr', line: '::error::pwned' } as never);
    reporter.close();
    const lines = written().trimEnd().split('\n');
    const token = /^::stop-commands::(kvmtest-[0-9a-f]{32})$/.exec(lines[0]!)?.[1];
    expect(token).toBeDefined();
    expect(lines.slice(1)).toEqual(['[debian-12] : :set-env name=X::y', '[debian-12 stderr] : :error::pwned', `::${token}::`]);
  });
});

describe('the capsule line under a finished cell', () => {
  const saved = { dir: '/out/cells/debian-11/capsule', bytes: 150 * 2 ** 20 + 2 ** 19, tookMs: 4200 };
  const doneOf = (result: CellResult, live = false) => {
    const { stream, written } = captureStream();
    const reporter = createTerminalReporter(stream, { live, color: false });
    reporter.onEvent({ type: 'cell-done', result });
    reporter.close();
    return written();
  };

  it('a capsule path starting with "-" is printed as ./-…, never as an option of kvmtest repro', () => {
    expect(doneOf({ ...debian11, capsule: { ...saved, dir: '-x y/capsule' } })).toContain("kvmtest repro './-x y/capsule'\n");
  });

  it('where the capsule went, its size and save time, and the command that steps into it', () => {
    expect(doneOf({ ...debian11, capsule: saved })).toBe(
      '✖ debian-11 failed 22.1s · exit code 1, 1 of 2 tests failed\n  capsule: /out/cells/debian-11/capsule (150.5 MiB, 4.2s) · kvmtest repro /out/cells/debian-11/capsule\n',
    );
  });

  it('a passed cell of capsule: always has its line too', () => {
    expect(doneOf({ ...debian12, capsule: { ...saved, dir: '/out/cells/debian-12/capsule', bytes: 2 ** 20, tookMs: 900 } })).toBe(
      '✔ debian-12 passed 19.9s\n  capsule: /out/cells/debian-12/capsule (1.0 MiB, 0.9s) · kvmtest repro /out/cells/debian-12/capsule\n',
    );
  });

  it('why there is none, on one line', () => {
    expect(doneOf({ ...debian11, capsule: { error: 'saving a capsule of kvmtest-1 failed:\n  disk full\x1b[31m' } })).toBe(
      '✖ debian-11 failed 22.1s · exit code 1, 1 of 2 tests failed\n  capsule: saving a capsule of kvmtest-1 failed: disk full\n',
    );
  });

  it('no capsule: no line', () => {
    expect(doneOf(debian11)).toBe('✖ debian-11 failed 22.1s · exit code 1, 1 of 2 tests failed\n');
  });

  it('live: the capsule line scrolls above the block with its cell', () => {
    const text = doneOf({ ...debian11, capsule: saved }, true);
    expect(text).toContain('\x1b[2K✖ debian-11 failed 22.1s');
    expect(text).toContain('\x1b[2K  capsule: /out/cells/debian-11/capsule (150.5 MiB, 4.2s) · kvmtest repro /out/cells/debian-11/capsule\n');
  });

  it('the capsule phase is reported like the others (plain mode)', () => {
    vi.useFakeTimers({ now: 0 });
    const { stream, written } = captureStream();
    const reporter = createTerminalReporter(stream, { live: false, color: false });
    const cell = { id: 'debian-11', image: 'debian-11', axes: {} };
    reporter.onEvent({ type: 'phase', cell, phase: 'boot', attempt: 1 });
    vi.setSystemTime(31_000);
    reporter.onEvent({ type: 'phase', cell, phase: 'capsule', attempt: 1 });
    reporter.close();
    vi.useRealTimers();
    expect(written()).toBe('[debian-11] boot\n[debian-11] capsule 31.0s\n');
  });
});
