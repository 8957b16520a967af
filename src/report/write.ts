import { createWriteStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type ErrorCode, kvmtestError } from '../errors.js';
import { buildReport } from '../matrix/totals.js';
import type { CellResult, MatrixReport } from '../matrix/types.js';

/** Pieces are joined up to this many characters before each write. */
const BATCH_CHARS = 64 * 1024;

/** A report's pieces joined into batches of about BATCH_CHARS. */
function* batches(chunks: Iterable<string>): Generator<string> {
  let batch = '';
  for (const chunk of chunks) {
    batch += chunk;
    if (batch.length >= BATCH_CHARS) {
      yield batch;
      batch = '';
    }
  }
  if (batch) yield batch;
}

/**
 * Writes the pieces to a stream with backpressure: the next piece is made only when the stream has
 * room, so memory holds a few batches, never the whole report. `end: false` for stdout.
 */
export async function writeChunks(chunks: Iterable<string>, out: NodeJS.WritableStream, options: { end?: boolean } = {}): Promise<void> {
  await pipeline(Readable.from(batches(chunks)), out, { end: options.end ?? true });
}

/** Writes the pieces to a file (created or truncated). */
export async function writeChunksToFile(chunks: Iterable<string>, path: string): Promise<void> {
  await writeChunks(chunks, createWriteStream(path));
}

/**
 * The report without its parsed cases: each cell that had some holds one coded case instead (`code`
 * and why the full report could not be written). Statuses, errors, tails and files stay, so CI
 * still sees every cell. Pure.
 */
export function reducedReport(report: MatrixReport, code: ErrorCode, why: string): MatrixReport {
  const cells = report.cells.map((cell): CellResult => {
    if (cell.cases.length === 0) return cell;
    const n = cell.cases.length;
    return {
      ...cell,
      cases: [
        {
          name: `${n} ${n === 1 ? 'case' : 'cases'} not written`,
          suite: '',
          status: 'error',
          file: '',
          message: `${code}: the report could not be written with its cases (${why}); this cell's ${n} parsed ${n === 1 ? 'case is' : 'cases are'} left out`,
        },
      ],
    };
  });
  const { kind: _k, version: _v, totals: _t, ok: _o, ...fields } = report;
  return buildReport({ ...fields, cells });
}

/**
 * Writes one report file from `render` (pieces). If that fails, the reduced report (no cases, one
 * coded case per cell: RESULT_TOO_LARGE when a piece was too long to make, else HOST_IO) is written
 * in its place and a coded line goes to `warn`; false then. If even that fails: HOST_IO.
 */
export async function writeReportFile(path: string, report: MatrixReport, render: (report: MatrixReport) => Iterable<string>, warn: (line: string) => void): Promise<boolean> {
  try {
    await writeChunksToFile(render(report), path);
    return true;
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    // V8's `Invalid string length` is a RangeError: the report's text, not the disk
    const code: ErrorCode = error instanceof RangeError ? 'RESULT_TOO_LARGE' : 'HOST_IO';
    try {
      await writeFile(path, [...render(reducedReport(report, code, why))].join(''));
    } catch (cause) {
      throw kvmtestError('HOST_IO', `Could not write the report ${path}: ${why}; nor its reduced form: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    }
    warn(`kvmtest: ${code}: ${path} could not be written whole (${why}); wrote it without the parsed cases`);
    return false;
  }
}
