import { describe, expect, it } from 'vitest';
import { toHtml } from '../../../src/report/html.js';
import { debian11, debian12, full, report } from '../fixtures/sample-run.js';

describe('toHtml', () => {
  it('is one self-contained page: no script, no external fetch, a CSP that forbids both', () => {
    const html = toHtml(full);
    expect(html).not.toMatch(/<script|<link|<iframe|https?:\/\//i);
    expect(html).toContain(`content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"`);
  });

  it('escapes and sanitizes every string from a guest: markup shows as text, escapes and NULs are gone', () => {
    const hostile = {
      ...debian11,
      stderrTail: '<script>window.__pwned=1</script>\x1b]8;;http://evil\x07link\x1b]8;;\x07\x00',
      cases: [{ name: '<img src=x onerror="window.__pwned=2">', suite: "s'uite", status: 'failed' as const, message: '</pre><b>x</b>', file: '"/f"' }],
    };
    const html = toHtml(report([hostile]));
    expect(html).not.toContain('<script>window');
    expect(html).not.toContain('<img src=x');
    expect(html).not.toContain('</pre><b>');
    expect(html).toContain('&lt;script&gt;window.__pwned=1&lt;/script&gt;');
    expect(html).toContain('&lt;img src=x onerror=&quot;window.__pwned=2&quot;&gt;');
    expect(html).not.toMatch(/\x1b|\x00|evil/);
  });

  it('escapes what a tampered report file holds where numbers and statuses belong', () => {
    const tampered = {
      ...debian11,
      exitCode: '<b>1</b>' as unknown as number,
      attempts: [{ status: '"><script>x</script>' as 'failed', exitCode: 1, durationMs: 1 }, ...debian11.attempts],
    };
    const html = toHtml(report([tampered], { host: { ...full.host, cpus: '<i>4</i>' as unknown as number } }));
    expect(html).not.toMatch(/<b>1<\/b>|<script>x|<i>4<\/i>/);
  });

  it('links cell files relative to the page, and only files beneath its directory', () => {
    const inside = { ...debian11, consoleLog: '/out/cells/debian-11/console log.txt', collected: [{ path: '/work/junit.xml', host: '/out/cells/debian-11/junit.xml', cases: 2 }] };
    const outside = { ...debian12, consoleLog: '/etc/passwd', collected: [{ path: '/x', host: '/out/../secret', cases: 0 }] };
    const html = toHtml(report([inside, outside]), { baseDir: '/out' });
    expect(html).toContain('href="cells/debian-11/console%20log.txt"');
    expect(html).toContain('href="cells/debian-11/junit.xml"');
    expect(html).not.toMatch(/href="[^"]*(passwd|secret)/);
    expect(html).toContain('<code>/etc/passwd</code>');
  });

  it('keeps a cell with very many failed cases bounded: the first 100, then a count', () => {
    const cases = Array.from({ length: 5000 }, (_, i) => ({ name: `case ${i}`, suite: '', status: 'failed' as const, message: 'm'.repeat(20_000), file: '/r.xml' }));
    const html = toHtml(report([{ ...debian11, cases }]));
    expect(html.match(/data-testid="case"/g)).toHaveLength(100);
    expect(html).toContain('and 4900 more in the JSON report');
    expect(html.length).toBeLessThan(1_500_000);
  });

  it('lays out images as rows and the other axes as columns, each entry linking to its cell', () => {
    const cells = [
      { ...debian12, id: 'debian-12/cpus=1', axes: { cpus: 1 } },
      { ...debian11, id: 'debian-11/cpus=2', axes: { cpus: 2 } },
    ];
    const html = toHtml(report(cells));
    expect(html).toContain('<th scope="col">cpus=1</th><th scope="col">cpus=2</th>');
    expect(html).toMatch(/<th scope="row">debian-12<\/th><td class="passed"[^>]*><a href="#cell-1">passed<\/a><\/td><td class="none">/);
    expect(html).toContain('href="#cell-2"');
  });
});
