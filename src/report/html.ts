import { isAbsolute, relative, sep } from 'node:path';
import type { CellResult, CellStatus, MatrixReport, TestCase } from '../matrix/types.js';
import { sanitize } from '../util/sanitize.js';
import { shellPath } from '../util/shell-quote.js';
import { formatDuration } from './table.js';

/** Where the page goes: links to cell files are made relative to it, and only to files beneath it. */
export interface HtmlOptions {
  baseDir?: string;
}

/** Per cell, at most this many failed or errored cases are shown (the JSON report has them all). */
const MAX_CASES = 100;
/** And on the whole page at most this many, so a page of many failing cells still opens. */
const MAX_PAGE_CASES = 1000;
/** A grid of more entries (images × axis combinations) than this is shown as one row per cell instead. */
const MAX_GRID_ENTRIES = 10_000;
/** Each message, detail, tail or console excerpt is cut to this many characters. */
const MAX_TEXT = 8000;
const PHASES = ['boot', 'node', 'push', 'run', 'pull', 'capsule'] as const;
const BAD: CellStatus[] = ['failed', 'error', 'timeout'];

/**
 * The report as one self-contained HTML page (no script, no fetch: styles inline, links relative):
 * totals and host, a grid of images × axes coloured by status, then each cell with a timeline of its
 * phases to one scale, its failed cases, output tails, console tail and links to its files. Every
 * string from a guest (or a report file) is sanitized and escaped. Pure.
 */
export function toHtml(report: MatrixReport, options: HtmlOptions = {}): string {
  return [...htmlChunks(report, options)].join('');
}

/** The page of toHtml piece by piece (the head and grid, then a piece per cell), for writing as a stream. Pure. */
export function* htmlChunks(report: MatrixReport, options: HtmlOptions = {}): Generator<string> {
  // a loop, not Math.max(...spread): a spread of many cells overflows the stack
  let scale = 1;
  for (const c of report.cells) scale = Math.max(scale, c.durations.total);
  const ids = new Map(report.cells.map((c, i) => [c.id, `cell-${i + 1}`]));
  const firstBad = report.cells.find((c) => BAD.includes(c.status));
  const t = report.totals;
  yield `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>kvmtest: ${report.ok ? 'passed' : 'failed'} (${t.cells} cells)</title>
<style>${STYLE}</style>
</head>
<body>
<a class="skip" href="#${firstBad ? ids.get(firstBad.id) : 'cells'}">${firstBad ? 'Skip to the first failed cell' : 'Skip to the cells'}</a>
<header>
<h1>kvmtest matrix <span class="badge ${report.ok ? 'passed' : 'failed'}" data-testid="overall">${report.ok ? 'passed' : 'failed'}</span></h1>
<p class="totals" data-testid="totals">${totalsLine(report)}</p>
<dl class="host">
<div><dt>host</dt><dd>${esc(report.host.hostname)}</dd></div>
<div><dt>accelerator</dt><dd>${esc(report.host.accel)}</dd></div>
<div><dt>CPUs / memory</dt><dd>${esc(String(report.host.cpus))} / ${esc(String(Math.round(report.host.memoryMiB / 1024)))} GiB</dd></div>
<div><dt>node</dt><dd>${esc(report.host.node)}</dd></div>
<div><dt>started</dt><dd>${esc(report.startedAt)}</dd></div>
<div><dt>duration</dt><dd>${esc(formatDuration(report.durationMs))}</dd></div>
<div><dt>shards</dt><dd>${esc(report.shards.join(', '))}${report.cells.length < report.allCellIds.length ? ` (${report.cells.length} of ${report.allCellIds.length} cells)` : ''}</dd></div>
</dl>
</header>
<main>
<h2 id="grid">Matrix</h2>
${grid(report, ids)}
<h2 id="cells">Cells</h2>
`;
  let room = MAX_PAGE_CASES;
  for (const [i, cell] of report.cells.entries()) {
    const section = cellSection(cell, ids.get(cell.id)!, scale, options, room);
    room -= section.shown;
    yield `${i > 0 ? '\n' : ''}${section.html}`;
  }
  yield `
</main>
</body>
</html>
`;
}

function totalsLine(report: MatrixReport): string {
  const t = report.totals;
  const parts = (['passed', 'failed', 'error', 'timeout', 'flaky', 'skipped'] as const).filter((k) => t[k] > 0).map((k) => `<span class="t-${k}">${t[k]} ${k}</span>`);
  return `${t.cells} cells: ${parts.join(', ') || 'none'}; cases: ${t.cases.total} (${t.cases.passed} passed, ${t.cases.failed} failed, ${t.cases.error} errors, ${t.cases.skipped} skipped)`;
}

/**
 * Images as rows, the other axes' combinations as columns; each entry links to its cell. Each
 * entry is looked up by (image, column), so the grid costs its size, not its size times the cells;
 * a grid of more than MAX_GRID_ENTRIES (a sparse one: cells that share no image or axes) is one
 * row per cell instead.
 */
function grid(report: MatrixReport, ids: Map<string, string>): string {
  const columnOf = new Map(
    report.cells.map((c) => [
      c,
      Object.entries(c.axes)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(' ') || '—',
    ]),
  );
  const images = unique(report.cells.map((c) => c.image));
  const columns = unique([...columnOf.values()]);
  if (images.length * columns.length > MAX_GRID_ENTRIES) return cellList(report, ids, columnOf);
  const at = new Map<string, CellResult>();
  for (const [cell, column] of columnOf) {
    const key = JSON.stringify([cell.image, column]);
    // the first cell of an (image, column) is the one shown, as before
    if (!at.has(key)) at.set(key, cell);
  }
  const head = `<tr><th scope="col">image</th>${columns.map((col) => `<th scope="col">${esc(col)}</th>`).join('')}</tr>`;
  const rows = images.map((image) => {
    const entries = columns.map((col) => {
      const cell = at.get(JSON.stringify([image, col]));
      return cell ? gridEntry(cell, ids) : '<td class="none">—</td>';
    });
    return `<tr><th scope="row">${esc(image)}</th>${entries.join('')}</tr>`;
  });
  return `<div class="scroll"><table class="grid" data-testid="grid"><thead>${head}</thead><tbody>${rows.join('')}</tbody></table></div>`;
}

/** The grid as one row per cell: image, axes, status. */
function cellList(report: MatrixReport, ids: Map<string, string>, columnOf: Map<CellResult, string>): string {
  const rows = report.cells.map((cell) => `<tr><th scope="row">${esc(cell.image)}</th><td>${esc(columnOf.get(cell)!)}</td>${gridEntry(cell, ids)}</tr>`);
  return `<p class="muted">${esc(String(report.cells.length))} cells share too few images and axes for a grid: one row each.</p><div class="scroll"><table class="grid" data-testid="grid"><thead><tr><th scope="col">image</th><th scope="col">axes</th><th scope="col">status</th></tr></thead><tbody>${rows.join('')}</tbody></table></div>`;
}

function gridEntry(cell: CellResult, ids: Map<string, string>): string {
  return `<td class="${esc(cell.status)}" data-cell="${esc(cell.id)}" data-status="${esc(cell.status)}"><a href="#${ids.get(cell.id)}">${esc(statusLabel(cell))}</a></td>`;
}

function statusLabel(cell: CellResult): string {
  return cell.status === 'flaky' ? `flaky (${cell.attempts.length} attempts)` : cell.status;
}

/** A cell's section, showing at most `room` of its failed cases (what is left of the page's MAX_PAGE_CASES); `shown`: how many it showed. */
function cellSection(cell: CellResult, id: string, scale: number, options: HtmlOptions, room: number): { html: string; shown: number } {
  const bad = BAD.includes(cell.status) || cell.status === 'flaky';
  const cases = cell.cases.filter((c) => c.status === 'failed' || c.status === 'error');
  const shown = Math.max(0, Math.min(MAX_CASES, room, cases.length));
  const guest = [cell.guest?.os, cell.guest?.kernel && `kernel ${cell.guest.kernel}`, cell.guest?.node && `node ${cell.guest.node}`].filter(Boolean).join(', ');
  const links = fileLinks(cell, options);
  const html = `<section id="${id}" class="cell" data-cell="${esc(cell.id)}" data-status="${esc(cell.status)}">
<details${bad ? ' open' : ''}>
<summary><span class="badge ${esc(cell.status)}">${esc(statusLabel(cell))}</span> <span class="id">${esc(cell.id)}</span> <span class="muted">${esc(formatDuration(cell.durations.total))}${cell.exitCode !== null ? `, exit ${esc(String(cell.exitCode))}` : ''}${cell.signal ? `, ${esc(cell.signal)}` : ''}</span></summary>
${timeline(cell, scale)}
${guest ? `<p class="muted">${esc(guest)}</p>` : ''}
${cell.attempts.length > 1 ? `<p>Attempts: ${cell.attempts.map((a, i) => `${i + 1}: ${esc(a.status)}${a.error ? ` (${esc(a.error.code)})` : ''}`).join('; ')}</p>` : ''}
${cell.error ? `<div class="error" role="note"><p><strong>${esc(cell.error.code)}</strong>: ${esc(cut(cell.error.message))}</p>${cell.error.consoleTail ? `<h4>console (last lines)</h4><pre>${esc(cut(cell.error.consoleTail))}</pre>` : ''}</div>` : ''}
${cases.length > 0 ? `<h3>Failed cases (${cases.length})</h3><ul class="cases">${cases.slice(0, shown).map(caseItem).join('')}</ul>${cases.length > shown ? `<p class="muted">and ${cases.length - shown} more in the JSON report</p>` : ''}` : ''}
${cell.stdoutTail ? `<h3>stdout (last lines)</h3><pre>${esc(cut(cell.stdoutTail))}</pre>` : ''}
${cell.stderrTail ? `<h3>stderr (last lines)</h3><pre>${esc(cut(cell.stderrTail))}</pre>` : ''}
${capsuleBlock(cell, options)}
${links.length > 0 ? `<h3>Files</h3><ul class="files">${links.join('')}</ul>` : ''}
</details>
</section>`;
  return { html, shown };
}

/** The phases of the last attempt as one bar, to the scale of the longest cell. */
function timeline(cell: CellResult, scale: number): string {
  // each phase that took time, with its label ("run 12.3s"), computed once for the bar, its legend and its aria-label
  const phases = PHASES.filter((p) => (cell.durations[p] ?? 0) > 0).map((p) => ({ p, ms: cell.durations[p]!, label: `${p} ${formatDuration(cell.durations[p]!)}` }));
  if (phases.length === 0) return '';
  const spans = phases.map(
    ({ p, ms, label }) => `<span class="phase ${p}" style="width:${esc(((Number(ms) / scale) * 100).toFixed(2))}%" title="${esc(label)}"><span class="sr">${esc(label)}</span></span>`,
  );
  const legend = phases.map(({ p, label }) => `<span class="key ${p}"></span>${esc(label)}`).join(' ');
  return `<div class="timeline" role="img" aria-label="phases: ${esc(phases.map(({ label }) => label).join(' '))}">${spans.join('')}</div><p class="legend">${legend}</p>`;
}

function caseItem(c: TestCase): string {
  const name = [c.suite, c.name].filter(Boolean).join(' > ');
  return `<li class="case ${esc(c.status)}" data-testid="case"><p><span class="badge ${esc(c.status)}">${esc(c.status)}</span> <span class="case-name">${esc(cut(name, 500))}</span>${c.file ? ` <span class="muted">${esc(cut(c.file, 300))}</span>` : ''}</p>${c.message ? `<p class="message">${esc(cut(c.message))}</p>` : ''}${c.details ? `<details><summary>details</summary><pre>${esc(cut(c.details))}</pre></details>` : ''}</li>`;
}

/** The cell's capsule: a link to its directory, its size, and the command that steps into it; or why there is none. */
function capsuleBlock(cell: CellResult, options: HtmlOptions): string {
  const capsule = cell.capsule;
  if (!capsule) return '';
  if ('error' in capsule) return `<h3>Capsule</h3><p class="muted" data-testid="capsule">${esc(cut(capsule.error, 500))}</p>`;
  const href = options.baseDir ? relativeHref(options.baseDir, capsule.dir) : undefined;
  const path = href ? decodeURIComponent(href) : capsule.dir;
  const where = href ? `<a href="${esc(href)}/">${esc(path)}</a>` : `<code>${esc(capsule.dir)}</code>`;
  return `<h3>Capsule</h3><p data-testid="capsule">The machine as it was when the cell ended: ${where} (${esc(formatBytes(capsule.bytes))}, saved in ${esc(formatDuration(capsule.tookMs))}). Step into it (from this page's directory): <code>kvmtest repro ${esc(shellPath(path))}</code></p>`;
}

function formatBytes(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** Links to the cell's console log and collected files, relative to the page; a path outside baseDir is shown, not linked. */
function fileLinks(cell: CellResult, options: HtmlOptions): string[] {
  const items: string[] = [];
  const link = (path: string, label: string) => {
    const href = options.baseDir ? relativeHref(options.baseDir, path) : undefined;
    items.push(href ? `<li><a href="${esc(href)}">${esc(label)}</a></li>` : `<li>${esc(label)}: <code>${esc(path)}</code></li>`);
  };
  if (cell.consoleLog) link(cell.consoleLog, 'console log');
  for (const c of cell.collected ?? []) {
    if (c.host) link(c.host, `${c.path}${c.cases !== undefined ? ` (${c.cases} cases)` : ''}`);
    else if (c.error) items.push(`<li>${esc(c.path)}: <span class="muted">${esc(cut(c.error, 500))}</span></li>`);
  }
  return items;
}

function relativeHref(baseDir: string, path: string): string | undefined {
  const rel = relative(baseDir, path);
  if (!rel || isAbsolute(rel) || rel === '..' || rel.startsWith(`..${sep}`)) return undefined;
  return rel.split(sep).map(encodeURIComponent).join('/');
}

/** Text cut to `max` characters; a value that is not a string (a tampered report) is shown as text, undefined as nothing. */
function cut(value: unknown, max = MAX_TEXT): string {
  const text = String(value ?? '');
  return text.length > max ? `${text.slice(0, max)}… [${text.length - max} more characters]` : text;
}

/**
 * Guest text made safe for a page: no control characters or escapes (sanitize), then HTML-escaped.
 * Every value from a report goes through it, numbers and statuses too: `merge --html` reads report
 * files, which may have been edited.
 */
function esc(text: string): string {
  return sanitize(String(text), { multiline: true }).replace(/[&<>"']/g, (ch) => ENTITIES[ch]!);
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function unique<T>(values: T[]): T[] {
  return [...new Set(values)];
}

const STYLE = `
:root{color-scheme:light dark;--bg:#fff;--fg:#1b1f24;--muted:#59636e;--line:#d1d9e0;--passed:#1a7f37;--failed:#cf222e;--error:#bc4c00;--timeout:#8250df;--flaky:#9a6700;--skipped:#59636e;--panel:#f6f8fa}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--line:#3d444d;--passed:#3fb950;--failed:#f85149;--error:#db6d28;--timeout:#ab7df8;--flaky:#d29922;--skipped:#9198a1;--panel:#151b23}}
*{box-sizing:border-box}body{margin:0;padding:1rem;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,sans-serif;max-width:80rem;margin-inline:auto}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.2rem;margin-top:1.5rem;border-bottom:1px solid var(--line)}h3{font-size:1rem;margin:.8rem 0 .3rem}h4{margin:.5rem 0 .2rem;font-size:.9rem}
a{color:inherit}a:focus-visible,summary:focus-visible{outline:3px solid #0969da;outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:var(--bg);padding:.3rem .6rem;border:1px solid var(--line)}
.muted{color:var(--muted)}.host{display:flex;flex-wrap:wrap;gap:.3rem 1.5rem;margin:.5rem 0}.host div{display:flex;gap:.4rem}.host dt{color:var(--muted)}.host dd{margin:0}
.badge{display:inline-block;padding:0 .45rem;border-radius:1rem;color:#fff;font-size:.85em;font-weight:600;background:var(--skipped)}
.badge.passed{background:var(--passed)}.badge.failed{background:var(--failed)}.badge.error{background:var(--error)}.badge.timeout{background:var(--timeout)}.badge.flaky{background:var(--flaky)}
.t-failed{color:var(--failed)}.t-passed{color:var(--passed)}.t-error{color:var(--error)}.t-timeout{color:var(--timeout)}.t-flaky{color:var(--flaky)}
.scroll{overflow-x:auto}.grid{border-collapse:collapse}.grid th,.grid td{border:1px solid var(--line);padding:.3rem .6rem;text-align:left;white-space:nowrap}
.grid td.passed{background:color-mix(in srgb,var(--passed) 22%,transparent)}.grid td.failed{background:color-mix(in srgb,var(--failed) 28%,transparent)}.grid td.error{background:color-mix(in srgb,var(--error) 28%,transparent)}
.grid td.timeout{background:color-mix(in srgb,var(--timeout) 28%,transparent)}.grid td.flaky{background:color-mix(in srgb,var(--flaky) 28%,transparent)}.grid td a{display:block;font-weight:600;text-decoration:none}
.cell{border:1px solid var(--line);border-radius:.4rem;margin:.5rem 0;background:var(--panel)}.cell summary{cursor:pointer;padding:.5rem .7rem}.cell details>*:not(summary){margin-inline:.7rem}
.id{font-weight:600;word-break:break-all}.timeline{display:flex;height:.9rem;background:var(--line);border-radius:.2rem;overflow:hidden;margin:.3rem .7rem}
.phase,.key{display:inline-block;height:100%}.key{width:.8rem;height:.8rem;vertical-align:middle;margin-right:.2rem;border-radius:.15rem}
.boot{background:#6e7781}.node{background:#0969da}.push{background:#1f883d}.run{background:#8250df}.pull{background:#bf8700}.capsule{background:#1b7c83}
.legend{font-size:.85rem;color:var(--muted);margin-top:0}.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
.cell .error{border-left:4px solid var(--failed);padding:.1rem .6rem;margin:.5rem 0}pre{background:var(--bg);border:1px solid var(--line);padding:.5rem;overflow:auto;max-height:24rem;white-space:pre-wrap;word-break:break-word;font-size:.85rem}
.cases{list-style:none;padding:0}.case{border-top:1px solid var(--line);padding:.3rem 0}.case p{margin:.2rem 0}.message{font-family:ui-monospace,monospace;font-size:.9rem;white-space:pre-wrap;word-break:break-word}
.files{padding-left:1.2rem}code{word-break:break-all}
@media (max-width:40rem){body{padding:.5rem;font-size:14px}.host{flex-direction:column}}
`;
