import { describe, expect, it } from 'vitest';
import { formatDuration, summaryTable } from '../../../src/report/table.js';
import { hostileCell, minimalReport, runsCommand } from '../fixtures/hostile.js';
import { full } from '../fixtures/sample-run.js';

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

describe('reports of hostile guest text', () => {
  it('the end-of-run table: no escapes, no workflow commands, no bidi', () => {
    const text = summaryTable(minimalReport([hostileCell]), { color: false });
    expect(text).not.toMatch(/[\x1b\x07\u202e\r]/);
    expect(runsCommand(text)).toBe(false);
  });
});
