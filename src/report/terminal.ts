import type { CellPhase, CellResult, CellSpec, MatrixEvent } from '../matrix/types.js';
import { shellPath } from '../util/shell-quote.js';
import { fenced, underGithubActions } from '../util/stop-commands.js';
import { cellProblem, formatDuration, isBadCase, oneLine, paint, paintStatus, STATUS_MARK, summaryTable } from './table.js';

export type ReporterStream = NodeJS.WritableStream & { isTTY?: boolean; columns?: number; rows?: number };

export interface TerminalReporterOptions {
  /** Redrawn block of running cells; default: the stream is a TTY and $CI is not set. */
  live?: boolean;
  /** Print every output line of the runs, prefixed with the cell id. Default false. */
  verbose?: boolean;
  /** ANSI colors; default: the stream is a TTY and $NO_COLOR is not set. */
  color?: boolean;
  /** Fence verbose output with ::stop-commands:: (default: under GitHub Actions). */
  github?: boolean;
}

export interface TerminalReporter {
  onEvent(event: MatrixEvent): void;
  /** Stops redrawing and clears the live block; safe to call twice. */
  close(): void;
}

interface Pending {
  spec: CellSpec;
  phase: CellPhase;
  attempt: number;
  /** When the current attempt left the queue. */
  startedAt?: number;
}

const SPINNER = '⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏';
const REDRAW_MS = 125;

function doneLine(result: CellResult, color: boolean): string {
  const mark = paintStatus(STATUS_MARK[result.status], result.status, color);
  let detail = '';
  if (result.status === 'failed') {
    const bad = result.cases.filter(isBadCase).length;
    detail = [cellProblem(result), ...(bad ? [`${bad} of ${result.cases.length} tests failed`] : [])].join(', ');
  } else if (result.status === 'error' || result.status === 'timeout') detail = cellProblem(result);
  else if (result.status === 'flaky') detail = `passed on attempt ${result.attempts.length}`;
  else if (result.status === 'skipped' && result.error) detail = oneLine(result.error.message);
  return `${mark} ${result.id} ${result.status} ${formatDuration(result.durations.total)}${detail ? ` · ${detail}` : ''}`;
}

/** Where the cell's capsule went and its size (the user's next command), or why there is none. */
function capsuleLine(result: CellResult): string {
  const capsule = result.capsule;
  if (!capsule) return '';
  if ('error' in capsule) return `  capsule: ${oneLine(capsule.error)}`;
  return `  capsule: ${capsule.dir} (${(capsule.bytes / 2 ** 20).toFixed(1)} MiB, ${formatDuration(capsule.tookMs)}) · kvmtest repro ${shellPath(capsule.dir)}`;
}

/**
 * Progress of a matrix run on a stream. Live (a terminal): finished cells scroll above a redrawn block
 * with one line per running or queued cell. Plain (CI logs, pipes): a line per phase change and per finished cell.
 * Both end with the summary table.
 */
export function createTerminalReporter(stream: ReporterStream, options: TerminalReporterOptions = {}): TerminalReporter {
  const live = options.live ?? (stream.isTTY === true && !process.env.CI);
  const color = options.color ?? (stream.isTTY === true && !process.env.NO_COLOR);
  const pending = new Map<string, Pending>();
  let timer: ReturnType<typeof setInterval> | undefined;
  let drawn = 0;
  let frame = 0;
  let closed = false;
  // verbose guest lines are sanitized, and under GitHub Actions also fenced: no workflow command runs from them
  const guestLines = (options.github ?? underGithubActions()) ? fenced<string>((text) => stream.write(text)) : undefined;

  const blockLines = (): string[] => {
    const now = Date.now();
    const width = Math.max(20, (stream.columns ?? 100) - 1);
    const entries = [...pending.values()];
    const running = entries.filter((p) => p.startedAt !== undefined);
    const queued = entries.filter((p) => p.startedAt === undefined);
    const spin = SPINNER[frame % SPINNER.length]!;
    const lines = [
      ...running.map((p) => {
        const attempt = p.attempt > 1 ? ` (attempt ${p.attempt})` : '';
        return `${paint(spin, 'yellow', color)} ${p.spec.id}  ${p.phase}${attempt} ${formatDuration(now - p.startedAt!)}`;
      }),
      ...queued.map((p) => `${paint('·', 'gray', color)} ${p.spec.id}  queued`),
    ];
    // lines past the bottom of the screen could not be redrawn in place
    const max = Math.max(3, (stream.rows ?? 24) - 2);
    const shown = lines.length > max ? [...lines.slice(0, max - 1), `  … ${lines.length - max + 1} more`] : lines;
    // a wrapped line would throw off the cursor-up count: cut to the width (ANSI codes only shorten what shows)
    return shown.map((line) => (visibleLength(line) > width ? cut(line, width) : line));
  };

  /** Rewrites the block in place, with `above` printed once where the block began. */
  const render = (above: string[] = [], block = true) => {
    const lines = [...above, ...(block ? blockLines() : [])];
    let out = drawn > 0 ? `\x1b[${drawn}A\r` : '';
    for (const line of lines) out += `\x1b[2K${line}\n`;
    if (lines.length === 0 && drawn === 0) return;
    out += '\x1b[J';
    drawn = block ? lines.length - above.length : 0;
    stream.write(out);
  };

  const print = (line: string) => {
    guestLines?.end();
    if (live) render([line], !closed);
    else stream.write(`${line}\n`);
  };

  const printGuestLine = (line: string) => {
    if (guestLines && !live) guestLines.write(`${line}\n`);
    else print(line);
  };

  const stop = () => {
    if (timer) clearInterval(timer);
    timer = undefined;
  };

  const startTimer = () => {
    if (!live || timer || closed) return;
    timer = setInterval(() => {
      frame += 1;
      render();
    }, REDRAW_MS);
    timer.unref();
  };

  const close = () => {
    if (closed) return;
    closed = true;
    guestLines?.end();
    stop();
    if (live && drawn > 0) render([], false);
  };

  const onPhase = (cell: CellSpec, phase: CellPhase, attempt: number) => {
    const entry = pending.get(cell.id) ?? { spec: cell, phase: 'queued', attempt };
    pending.set(cell.id, entry);
    if (attempt !== entry.attempt) entry.startedAt = undefined;
    entry.attempt = attempt;
    entry.phase = phase;
    if (phase === 'queued' || phase === 'done') return;
    const first = entry.startedAt === undefined;
    if (first) entry.startedAt = Date.now();
    if (live) return startTimer();
    const elapsed = first ? '' : ` ${formatDuration(Date.now() - entry.startedAt!)}`;
    guestLines?.end();
    stream.write(`[${cell.id}] ${phase}${attempt > 1 ? ` (attempt ${attempt})` : ''}${elapsed}\n`);
  };

  return {
    onEvent(event) {
      if (closed) return;
      switch (event.type) {
        case 'prepare':
          print(oneLine(event.message, 1000));
          break;
        case 'start': {
          for (const cell of event.cells) pending.set(cell.id, { spec: cell, phase: 'queued', attempt: 1 });
          const shard = event.shard && event.shard !== '1/1' ? `, shard ${event.shard}` : '';
          print(`kvmtest: ${event.cells.length} ${event.cells.length === 1 ? 'cell' : 'cells'}, ${event.concurrency} at a time${shard}`);
          startTimer();
          break;
        }
        case 'phase':
          onPhase(event.cell, event.phase, event.attempt);
          break;
        case 'output':
          if (options.verbose) printGuestLine(`[${event.cell.id}${event.stream === 'stderr' ? ' stderr' : ''}] ${oneLine(event.line, 4000)}`);
          break;
        case 'cell-done':
          pending.delete(event.result.id);
          print(doneLine(event.result, color));
          if (event.result.capsule) print(capsuleLine(event.result));
          break;
        case 'end':
          pending.clear();
          close();
          stream.write(`\n${summaryTable(event.report, { color })}`);
          break;
      }
    },
    close,
  };
}

const ANSI_CODE = /\x1b\[[0-9;]*m/g;

function visibleLength(line: string): number {
  return line.replace(ANSI_CODE, '').length;
}

/** Cuts to `width` visible characters, keeping color codes whole and resetting at the end. */
function cut(line: string, width: number): string {
  let out = '';
  let visible = 0;
  for (const part of line.split(/(\x1b\[[0-9;]*m)/)) {
    if (part.startsWith('\x1b[')) out += part;
    else {
      const room = width - 1 - visible;
      if (room <= 0) break;
      out += part.slice(0, room);
      visible += Math.min(part.length, room);
    }
  }
  return `${out}…${out.includes('\x1b[') ? '\x1b[0m' : ''}`;
}
