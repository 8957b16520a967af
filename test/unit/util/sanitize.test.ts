import { describe, expect, it } from 'vitest';
import { githubAnnotations, githubSummary } from '../../../src/report/github.js';
import { summaryTable } from '../../../src/report/table.js';
import { createTerminalReporter } from '../../../src/report/terminal.js';
import { createProgress } from '../../../src/util/progress.js';
import { sanitize, sanitizeLine } from '../../../src/util/sanitize.js';
import { commandFence, fenced } from '../../../src/util/stop-commands.js';
import type { CellResult, MatrixReport } from '../../../src/matrix/types.js';

/** What a hostile guest writes where the host prints it. */
const HOSTILE = {
  title: '\x1b]0;pwned\x07',
  clear: '\x1b[2J\x1b[H',
  setEnv: '::set-env name=X::y',
  indented: '  ::error::x',
  group: 'ok ##[group]hidden',
  bidi: 'abc\u202edcb',
  overwrite: 'all tests passed\rFAILED ',
  hyperlink: '\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\',
  dcs: '\x1bP1$r0m\x1b\\',
  c1: '\x9b31mred\x9d0;t\x9c',
  unterminated: 'text\x1b]0;swallowed',
};

/** True when the GitHub runner would take some line of text as a workflow command. */
function runsCommand(text: string): boolean {
  return text.split(/\r\n|\r|\n/).some((line) => line.trimStart().startsWith('::') || line.includes('##['));
}

describe('sanitize', () => {
  it('removes OSC (window title, hyperlinks), CSI, DCS and C1 sequences, keeping the visible text', () => {
    expect(sanitize(`a${HOSTILE.title}b`)).toBe('ab');
    expect(sanitize(`a${HOSTILE.clear}b`)).toBe('ab');
    expect(sanitize(HOSTILE.hyperlink)).toBe('click');
    expect(sanitize(`a${HOSTILE.dcs}b`)).toBe('ab');
    expect(sanitize(HOSTILE.c1)).toBe('red');
    expect(sanitize(HOSTILE.unterminated)).toBe('text');
    expect(sanitize('\x00bell\x07 del\x7f esc\x1b')).toBe('bell del esc');
  });

  it('removes bidi overrides and isolates', () => {
    expect(sanitize(HOSTILE.bidi)).toBe('abcdcb');
    expect(sanitize('\u2066x\u2069\u200f')).toBe('x');
  });

  it('a carriage return cannot overwrite a line: it becomes a line break, or a space on one line', () => {
    expect(sanitize(HOSTILE.overwrite, { multiline: true })).toBe('all tests passed\nFAILED ');
    expect(sanitize(HOSTILE.overwrite)).toBe('all tests passed FAILED ');
    expect(sanitize('a\r\nb', { multiline: true })).toBe('a\nb');
    expect(sanitize('a\u2028b\x85c', { multiline: true })).toBe('a\nb\nc');
  });

  it('keeps tabs; keeps newlines only where the caller allows several lines', () => {
    expect(sanitize('a\tb\nc', { multiline: true })).toBe('a\tb\nc');
    expect(sanitize('a\tb\nc')).toBe('a\tb c');
  });

  it('no line can start a workflow command, and ##[ appears nowhere', () => {
    for (const text of [HOSTILE.setEnv, HOSTILE.indented, HOSTILE.group, `x\n${HOSTILE.setEnv}`, `x\r${HOSTILE.indented}`, '\u3000::warning::w', ':::x', '###[y', `${HOSTILE.clear}::error::z`]) {
      expect(runsCommand(sanitize(text, { multiline: true })), JSON.stringify(text)).toBe(false);
      expect(runsCommand(sanitizeLine(text)), JSON.stringify(text)).toBe(false);
    }
    expect(sanitize(HOSTILE.setEnv)).toBe(': :set-env name=X::y');
    expect(sanitize(HOSTILE.indented)).toBe('  : :error::x');
    expect(sanitize(HOSTILE.group)).toBe('ok # #[group]hidden');
  });

  it('leaves ordinary text alone', () => {
    const text = 'ok 1 - parses <tag> & "quotes" :: in the middle, ünïcödé ✔\n\tdetails';
    expect(sanitize(text, { multiline: true })).toBe(text);
  });

  it('is linear on long hostile input', () => {
    const big = `${'\x1b]'.repeat(100_000)}${'\x1b['.repeat(100_000)}${'::'.repeat(100_000)}`;
    expect(sanitize(big).length).toBeLessThan(big.length);
  });
});

const cell = (over: Partial<CellResult>): CellResult => ({
  id: 'debian-12', image: 'debian-12', axes: {}, status: 'failed', attempts: [], exitCode: 1, signal: null,
  durations: { total: 1000 }, cases: [], stderrTail: '', ...over,
} as CellResult);

const report = (cells: CellResult[]): MatrixReport => ({
  version: 1, ok: false, startedAt: '', durationMs: 1000, matrixKey: 'k', allCellIds: cells.map((c) => c.id), shards: ['1/1'], cells,
  totals: { cells: cells.length, passed: 0, failed: cells.length, error: 0, timeout: 0, flaky: 0, skipped: 0, cases: { total: 1, passed: 0, failed: 1, error: 0, skipped: 0 } },
} as unknown as MatrixReport);

const hostileCell = cell({
  guest: { os: `Debian${HOSTILE.title}\n::set-env name=A::b`, kernel: 'k' } as CellResult['guest'],
  cases: [{ name: `${HOSTILE.indented}${HOSTILE.clear}`, suite: `${HOSTILE.group}\n::error::suite`, status: 'failed', message: `${HOSTILE.overwrite}\n${HOSTILE.setEnv}`, file: 'r.xml' }],
  stderrTail: `${HOSTILE.setEnv}\n${HOSTILE.title}\n##[endgroup]`,
  error: { code: 'BOOT_TIMEOUT', message: `::error::boot\n${HOSTILE.bidi}`, consoleTail: `${HOSTILE.indented}\n${HOSTILE.clear}` } as CellResult['error'],
  status: 'error',
});

describe('reports of hostile guest text', () => {
  it('the end-of-run table: no escapes, no workflow commands, no bidi', () => {
    const text = summaryTable(report([hostileCell]), { color: false });
    expect(text).not.toMatch(/[\x1b\x07\u202e\r]/);
    expect(runsCommand(text)).toBe(false);
  });

  it('annotations: one line each, properties and data escaped as the runner expects', () => {
    const lines = githubAnnotations(report([hostileCell]));
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      expect(line).toMatch(/^::error title=[^:,\n\r]*::[^\n\r]*$/);
      expect(line).not.toMatch(/[\x1b\x07\u202e]|##\[/);
      // the data decodes to lines that are no commands either
      const data = line.slice(line.indexOf('::', 2) + 2).replace(/%0A/g, '\n').replace(/%0D/g, '\r').replace(/%25/g, '%');
      expect(runsCommand(data)).toBe(false);
    }
  });

  it('the step summary: no HTML, table breaks or code spans from the guest', () => {
    const md = githubSummary(report([cell({ guest: { os: 'a|b`c`<script>x</script>' } as CellResult['guest'], cases: [{ name: '<img src=x onerror=alert(1)>|`x`', suite: '', status: 'failed', message: '</details><h1>big', file: 'r.xml' }] })]));
    expect(md).not.toMatch(/<script|<img|<\/details><h1>|`c`|`x`/);
    expect(md).toContain('a&#124;b&#96;c&#96;&lt;script&gt;x&lt;/script&gt;');
    expect(md).toContain('&lt;img src=x onerror=alert(1)&gt;&#124;&#96;x&#96;');
    // the row still has its 8 columns
    const row = md.split('\n').find((l) => l.includes('script'))!;
    expect(row.split('|').length).toBe(10);
    expect(runsCommand(githubSummary(report([hostileCell])))).toBe(false);
  });

  it('verbose output lines are sanitized, and fenced with stop-commands under GitHub Actions', () => {
    let out = '';
    const stream = { write: (t: string) => ((out += t), true), isTTY: false } as unknown as NodeJS.WritableStream;
    const reporter = createTerminalReporter(stream, { live: false, verbose: true, github: true });
    const spec = { id: 'debian-12' } as never;
    reporter.onEvent({ type: 'output', cell: spec, stream: 'stdout', line: `${HOSTILE.setEnv}${HOSTILE.title}` } as never);
    reporter.onEvent({ type: 'output', cell: spec, stream: 'stderr', line: '::error::pwned' } as never);
    reporter.close();
    const lines = out.trimEnd().split('\n');
    const token = /^::stop-commands::(kvmtest-[0-9a-f]{32})$/.exec(lines[0]!)?.[1];
    expect(token).toBeDefined();
    expect(lines.slice(1)).toEqual(['[debian-12] : :set-env name=X::y', '[debian-12 stderr] : :error::pwned', `::${token}::`]);
  });

  it('progress lines (console lines, hello fields) are one sanitized line', () => {
    let out = '';
    const stream = { write: (t: string) => ((out += t), true), isTTY: false } as unknown as NodeJS.WriteStream;
    const progress = createProgress('boot debian-12', stream, 0);
    progress.phase('booting');
    progress.update(`${HOSTILE.indented}${HOSTILE.title}\n##[group]x`);
    progress.done(`${HOSTILE.bidi} up, kernel ${HOSTILE.clear}6.1\n::error::k`);
    expect(out).not.toMatch(/[\x1b\x07\u202e]/);
    expect(runsCommand(out)).toBe(false);
    expect(out.trimEnd().split('\n')).toHaveLength(3);
  });
});

describe('stop-commands fence', () => {
  it('stops before the first chunk, resumes at the end on a line of its own, with a fresh random token', () => {
    const fence = commandFence();
    expect(fence.stop).toMatch(/^::stop-commands::kvmtest-[0-9a-f]{32}\n$/);
    expect(commandFence().stop).not.toBe(fence.stop);
    const chunks: (string | Uint8Array)[] = [];
    const out = fenced<Buffer>((c) => chunks.push(c), fence);
    out.end();
    expect(chunks).toEqual([]);
    out.write(Buffer.from('::error::pwned\nno newline'));
    out.end();
    expect(chunks.map((c) => Buffer.from(c).toString())).toEqual([fence.stop, '::error::pwned\nno newline', `\n${fence.resume}`]);
  });
});
