import { describe, expect, it } from 'vitest';
import type { CellResult } from '../../../src/matrix/types.js';
import { escapeData, escapeProperty, githubAnnotations, githubSummary } from '../../../src/report/github.js';
import { hostileCell, minimalCell, minimalReport, runsCommand } from '../fixtures/hostile.js';
import { debian11, full, report } from '../fixtures/sample-run.js';

describe('GitHub', () => {
  it('escapes workflow-command data and properties', () => {
    expect(escapeData('50% done\r\nnext')).toBe('50%25 done%0D%0Anext');
    expect(escapeProperty('debian-12/cpus=2: a, b')).toBe('debian-12/cpus=2%3A a%2C b');
  });

  it('annotates failed cases, failed cells without failed cases, and flaky cells', () => {
    const lines = githubAnnotations(full);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe('::error title=debian-11%3A parses <tag> & "quotes"::expected <a> & "b"%0AAssertionError: expected <a> & "b"%0A    at parse (src/parse.js:3:9)');
    expect(lines[1]).toMatch(/^::error title=debian-13::error: BOOT_TIMEOUT: the guest did not answer within 5m%0A\[ {2}OK {2}\] Reached target cloud-init$/);
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

describe('reports of hostile guest text', () => {
  it('annotations: one line each, properties and data escaped as the runner expects', () => {
    const lines = githubAnnotations(minimalReport([hostileCell]));
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      expect(line).toMatch(/^::error title=[^:,\n\r]*::[^\n\r]*$/);
      expect(line).not.toMatch(/[\x1b\x07\u202e]|##\[/);
      // the data decodes to lines that are no commands either
      const data = line
        .slice(line.indexOf('::', 2) + 2)
        .replace(/%0A/g, '\n')
        .replace(/%0D/g, '\r')
        .replace(/%25/g, '%');
      expect(runsCommand(data)).toBe(false);
    }
  });

  it('the step summary: no HTML, table breaks or code spans from the guest', () => {
    const md = githubSummary(
      minimalReport([
        minimalCell({
          guest: { os: 'a|b`c`<script>x</script>' } as CellResult['guest'],
          cases: [{ name: '<img src=x onerror=alert(1)>|`x`', suite: '', status: 'failed', message: '</details><h1>big', file: 'r.xml' }],
        }),
      ]),
    );
    expect(md).not.toMatch(/<script|<img|<\/details><h1>|`c`|`x`/);
    expect(md).toContain('a&#124;b&#96;c&#96;&lt;script&gt;x&lt;/script&gt;');
    expect(md).toContain('&lt;img src=x onerror=alert(1)&gt;&#124;&#96;x&#96;');
    // the row still has its 8 columns
    const row = md.split('\n').find((l) => l.includes('script'))!;
    expect(row.split('|').length).toBe(10);
    expect(runsCommand(githubSummary(minimalReport([hostileCell])))).toBe(false);
  });
});
