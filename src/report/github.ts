import type { CellResult, CellStatus, MatrixReport } from '../matrix/types.js';
import { flakyNote } from './junit.js';
import { casesSummary, cellProblem, formatDuration, isBadCase, isBadCell, oneLine, plainText, totalsLine } from './table.js';

const EMOJI: Record<CellStatus, string> = {
  passed: '✅',
  failed: '❌',
  error: '💥',
  timeout: '⏱️',
  flaky: '⚠️',
  skipped: '⏭️',
};

/** Text inside an HTML element: no markup, no line breaks; `|` and backticks as entities too (a summary line is also Markdown). */
function html(text: string): string {
  return entities(oneLine(text, 2000), /[&<>|`]/g);
}

/**
 * Text in a Markdown line or table cell: as html(), and no emphasis, code spans, links, images,
 * strikethrough or column breaks either. Entities, unlike backslashes, mean the same in HTML and Markdown.
 */
function inline(text: string): string {
  return entities(oneLine(text, 2000), /[&<>|`*_[\]\\~!]/g);
}

const NAMED: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;' };

function entities(text: string, chars: RegExp): string {
  return text.replace(chars, (c) => NAMED[c] ?? `&#${c.charCodeAt(0)};`);
}

/** A fenced block that the content cannot close: the fence is longer than any backtick run inside. */
function codeBlock(text: string, maxLines = 60): string {
  const body = plainText(text).replace(/\s+$/, '').split('\n').slice(-maxLines).join('\n');
  const longest = Math.max(0, ...(body.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(Math.max(3, longest + 1));
  return `${fence}\n${body}\n${fence}`;
}

function count(cell: CellResult, status: 'passed' | 'failed' | 'skipped'): string {
  if (cell.cases.length === 0) return '-';
  // errored cases count as failed here: the reader wants to know what broke, not how
  return String(cell.cases.filter((c) => c.status === status || (status === 'failed' && c.status === 'error')).length);
}

function details(cell: CellResult): string {
  const lines = [`<details><summary>${EMOJI[cell.status]} <b>${html(cell.id)}</b>: ${cell.status} (${html(cellProblem(cell))})</summary>`, ''];
  const badCases = cell.cases.filter(isBadCase);
  if (badCases.length > 0) {
    lines.push(`Failed tests (${casesSummary(cell)}):`, '');
    for (const testCase of badCases) {
      const name = [testCase.suite, testCase.name].filter(Boolean).join(' › ');
      const message = testCase.message ?? testCase.details;
      lines.push(`- <b>${inline(name)}</b>${message ? `: ${inline(message)}` : ''}`);
    }
    lines.push('');
  }
  const notCollected = (cell.collected ?? []).filter((entry) => entry.error);
  if (notCollected.length > 0) {
    lines.push('Not collected:', '', ...notCollected.map((entry) => `- ${inline(entry.path)}: ${inline(entry.error!)}`), '');
  }
  if (cell.error?.consoleTail) lines.push('Serial console (last lines):', '', codeBlock(cell.error.consoleTail), '');
  if (cell.stderrTail.trim()) lines.push('stderr (last lines):', '', codeBlock(cell.stderrTail), '');
  if (cell.consoleLog) lines.push(`Console log on the runner: <code>${html(cell.consoleLog)}</code>`, '');
  lines.push('</details>');
  return lines.join('\n');
}

/** Markdown for $GITHUB_STEP_SUMMARY: totals, a row per cell, then what went wrong in each failed cell. */
export function githubSummary(report: MatrixReport): string {
  const lines = [
    `## ${report.ok ? '✅' : '❌'} kvmtest matrix ${report.ok ? 'passed' : 'failed'}: ${inline(totalsLine(report))}`,
    '',
    '| | Cell | OS | Exit | Passed | Failed | Skipped | Duration |',
    '|---|---|---|---:|---:|---:|---:|---:|',
  ];
  for (const cell of report.cells) {
    const exit = cell.exitCode !== null ? String(cell.exitCode) : (cell.signal ?? '-');
    lines.push(
      `| ${EMOJI[cell.status]} | ${inline(cell.id)} | ${inline(cell.guest?.os ?? '-')} | ${inline(exit)} | ` +
        `${count(cell, 'passed')} | ${count(cell, 'failed')} | ${count(cell, 'skipped')} | ${formatDuration(cell.durations.total)} |`,
    );
  }
  const failed = report.cells.filter(isBadCell);
  if (failed.length > 0) lines.push('', ...failed.flatMap((cell) => [details(cell), '']));
  if (report.shards.length > 1 || report.shards[0] !== '1/1') lines.push('', `Shards: ${report.shards.join(', ')}`);
  return `${lines.join('\n').trimEnd()}\n`;
}

/** Workflow-command data: %, CR and LF are encoded (https://github.com/actions/toolkit, command.ts). */
export function escapeData(text: string): string {
  return text.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

/** Workflow-command property values also encode ':' and ','. */
export function escapeProperty(text: string): string {
  return escapeData(text).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

/** One annotation; guest text is sanitized first, then escaped as the runner's toolkit does. */
function command(kind: 'error' | 'warning', title: string, message: string): string {
  const data = plainText(message).trim();
  return `::${kind} title=${escapeProperty(oneLine(title))}::${escapeData(data.length > 4000 ? `${data.slice(0, 3999)}…` : data)}`;
}

/** Annotation lines: an error per failed case (or per failed cell without failed cases), a warning per flaky cell. */
export function githubAnnotations(report: MatrixReport): string[] {
  const lines: string[] = [];
  for (const cell of report.cells) {
    const badCases = cell.cases.filter(isBadCase);
    for (const testCase of badCases) {
      const message = [testCase.message, testCase.details].filter(Boolean).join('\n') || testCase.status;
      lines.push(command('error', `${cell.id}: ${testCase.name}`, message));
    }
    if (isBadCell(cell) && (badCases.length === 0 || cell.status !== 'failed')) {
      const tail = (cell.error?.consoleTail || cell.stderrTail).trim().split('\n').slice(-20).join('\n');
      lines.push(command('error', cell.id, [`${cell.status}: ${cellProblem(cell)}`, tail].filter(Boolean).join('\n')));
    }
    if (cell.status === 'flaky') lines.push(command('warning', cell.id, flakyNote(cell)));
  }
  return lines;
}
