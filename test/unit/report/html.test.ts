import { describe, expect, it } from 'vitest';
import type { CellResult } from '../../../src/matrix/types.js';
import { toHtml } from '../../../src/report/html.js';
import { mergeReports } from '../../../src/report/merge.js';
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

describe('toHtml of a large merged report (issue 22)', () => {
  it('2,000 cells that share no image or axes: the grid is one row per cell, the page stays small', () => {
    // each entry was looked up among all cells, on an images × columns grid: 20 s and a 94 MB page for these
    const cells = Array.from({ length: 2000 }, (_, i) => ({ ...debian12, id: `img-${i}/a${i}=v`, image: `img-${i}`, axes: { [`a${i}`]: 'v' }, cases: [] }));
    const merged = mergeReports([JSON.parse(JSON.stringify(report(cells, { matrixKey: 'mk' })))]);
    const html = toHtml(merged);
    expect(html.match(/<td class="passed" data-cell=/g)).toHaveLength(2000);
    expect(html).not.toContain('<td class="none">');
    expect(html).toContain('2000 cells share too few images and axes for a grid: one row each.');
    expect(html.length).toBeLessThan(8 * 2 ** 20);
  });

  it('a dense grid is still a grid: the first cell of each image and column, and a dash where none ran', () => {
    const cells = [1, 2, 3].flatMap((cpus) => ['debian-11', 'debian-12'].map((image) => ({ ...debian12, id: `${image}/cpus=${cpus}`, image, axes: { cpus } })));
    const html = toHtml(report(cells.slice(0, 5)));
    expect(html).toContain('<th scope="col">cpus=1</th><th scope="col">cpus=2</th><th scope="col">cpus=3</th>');
    expect(html.match(/<td class="none">/g)).toHaveLength(1);
  });

  it('a case without a file (a report from elsewhere) is shown without one', () => {
    const cases = [{ name: 'no file', suite: 's', status: 'failed' }] as unknown as CellResult['cases'];
    const html = toHtml(mergeReports([report([{ ...debian11, cases }])]));
    expect(html).toMatch(/<span class="case-name">s &gt; no file<\/span><\/p>/);
  });

  it('at most 1,000 failed cases on the whole page, so a page of many failing cells still opens', () => {
    const cases = Array.from({ length: 100 }, (_, i) => ({ name: `case ${i}`, suite: '', status: 'failed' as const, message: 'm', file: '/r.xml' }));
    const cells = Array.from({ length: 30 }, (_, i) => ({ ...debian11, id: `d-${i}`, image: `d-${i}`, cases }));
    const html = toHtml(report(cells));
    expect(html.match(/data-testid="case"/g)).toHaveLength(1000);
    expect(html).toContain('and 100 more in the JSON report');
  });
});

describe('toHtml: the failure capsule of a cell', () => {
  const withCapsule = (capsule: CellResult['capsule'], over: Partial<CellResult> = {}) => report([{ ...debian11, ...over, capsule }]);
  /** The capsule paragraph(s) of a page. */
  const capsules = (html: string) => html.match(/<p[^>]*data-testid="capsule">.*?<\/p>/gs) ?? [];
  const saved = { dir: '/out/cells/debian-11/capsule', bytes: 150 * 2 ** 20 + 2 ** 19, tookMs: 4200 };

  it('links the capsule directory relative to the page (a trailing slash: a directory), with its size, save time and repro command', () => {
    const [block, ...more] = capsules(toHtml(withCapsule(saved), { baseDir: '/out' }));
    expect(more).toEqual([]);
    expect(block).toContain('<a href="cells/debian-11/capsule/">cells/debian-11/capsule</a>');
    expect(block).toContain('(150.5 MiB, saved in 4.2s)');
    expect(block).toContain('<code>kvmtest repro cells/debian-11/capsule</code>');
    // the same from a baseDir written with a trailing slash
    expect(capsules(toHtml(withCapsule(saved), { baseDir: '/out/' }))).toEqual([block]);
  });

  it("a cell id's axes (=) in the path: the link URL-encoded, its text and the repro command as the path reads", () => {
    const [block] = capsules(toHtml(withCapsule({ ...saved, dir: '/out/cells/debian-12_mode=fail/capsule' }), { baseDir: '/out' }));
    expect(block).toContain('<a href="cells/debian-12_mode%3Dfail/capsule/">cells/debian-12_mode=fail/capsule</a>');
    expect(block).toContain('<code>kvmtest repro cells/debian-12_mode=fail/capsule</code>');
  });

  it('sizes of a GiB and more in GiB', () => {
    expect(capsules(toHtml(withCapsule({ ...saved, bytes: 3 * 2 ** 30 + 2 ** 29, tookMs: 75_000 }), { baseDir: '/out' }))[0]).toContain('(3.5 GiB, saved in 1m15s)');
  });

  it('without a baseDir: the absolute path shown, not linked, and in the repro command', () => {
    const [block] = capsules(toHtml(withCapsule(saved)));
    expect(block).not.toContain('<a ');
    expect(block).toContain('<code>/out/cells/debian-11/capsule</code>');
    expect(block).toContain('<code>kvmtest repro /out/cells/debian-11/capsule</code>');
  });

  it('a capsule directory outside baseDir is shown, never linked', () => {
    for (const dir of ['/elsewhere/capsule', '/out/../etc/capsule', '/out']) {
      const [block] = capsules(toHtml(withCapsule({ ...saved, dir }), { baseDir: '/out' }));
      expect(block, dir).not.toMatch(/<a |href=/);
      expect(block, dir).toContain(`<code>${dir}</code>`);
      expect(block, dir).toContain(`<code>kvmtest repro ${dir}</code>`);
    }
  });

  it('why there is no capsule, as text', () => {
    const html = toHtml(withCapsule({ error: 'no capsule: the guest had already failed <b>x</b>' }), { baseDir: '/out' });
    expect(capsules(html)).toEqual(['<p class="muted" data-testid="capsule">no capsule: the guest had already failed &lt;b&gt;x&lt;/b&gt;</p>']);
    expect(html).not.toContain('kvmtest repro');
  });

  it('a cell without a capsule has no capsule block', () => {
    const html = toHtml(report([debian11]), { baseDir: '/out' });
    expect(capsules(html)).toEqual([]);
    expect(html).not.toContain('<h3>Capsule</h3>');
  });

  it('a hostile directory name is escaped in the link, the text and the repro command (one shell word)', () => {
    const dir = `/out/cells/<script>alert(1)</script>'; rm -rf ~ #/capsule`;
    const html = toHtml(withCapsule({ ...saved, dir }), { baseDir: '/out' });
    expect(html).not.toContain('<script>');
    const [block] = capsules(html);
    // each path segment URL-encoded, then HTML-escaped (the quote)
    expect(block).toContain('<a href="cells/%3Cscript%3Ealert(1)%3C/script%3E&#39;%3B%20rm%20-rf%20~%20%23/capsule/">cells/&lt;script&gt;alert(1)&lt;/script&gt;&#39;; rm -rf ~ #/capsule</a>');
    // the command: the path as one single-quoted shell word (its quote closed, escaped, reopened), then HTML-escaped
    expect(block).toContain('<code>kvmtest repro &#39;cells/&lt;script&gt;alert(1)&lt;/script&gt;&#39;\\&#39;&#39;; rm -rf ~ #/capsule&#39;</code>');
    // outside baseDir and without one: shown escaped
    for (const options of [{}, { baseDir: '/elsewhere' }]) {
      const page = toHtml(withCapsule({ ...saved, dir }), options);
      expect(page).not.toContain('<script>');
      expect(capsules(page)[0]).toContain('<code>/out/cells/&lt;script&gt;alert(1)&lt;/script&gt;&#39;; rm -rf ~ #/capsule</code>');
    }
  });

  it('a path starting with "-" is shown as ./-…, never as an option of kvmtest repro', () => {
    for (const dir of ['/out/-rf/capsule', '/out/--cold/capsule']) {
      const [block] = capsules(toHtml(withCapsule({ ...saved, dir }), { baseDir: '/out' }));
      expect(block).toContain(`<code>kvmtest repro ./${dir.slice(5)}</code>`);
    }
  });

  it("the save's time is a phase of the cell's timeline", () => {
    const html = toHtml(withCapsule(saved, { durations: { ...debian11.durations, capsule: 4200 } }));
    expect(html).toMatch(/<span class="phase capsule" style="width:[\d.]+%" title="capsule 4\.2s">/);
    expect(html).toContain('<span class="key capsule"></span>capsule 4.2s');
  });
});
