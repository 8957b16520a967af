import type { CellResult, MatrixReport, TestCase } from '../matrix/types.js';

/**
 * The JSON report piece by piece: exactly `JSON.stringify(report, null, 2)` and a newline, but each
 * case serialised on its own, so a report of any size is written without one giant string (V8
 * refuses a string past 2^29 characters: `Invalid string length`). Pure.
 */
export function* reportJson(report: MatrixReport): Generator<string> {
  yield* object(report, '', (key, value, indent) => (key === 'cells' ? array(value as CellResult[], indent, cellJson) : undefined));
  yield '\n';
}

function cellJson(cell: CellResult, indent: string): Iterable<string> {
  return object(cell, indent, (key, value, inner) => (key === 'cases' ? array(value as TestCase[], inner, (c, at) => [whole(c, at)]) : undefined));
}

/** One value as JSON.stringify(value, null, 2) writes it at this indentation (strings in JSON hold no raw newline); undefined in an array is null. */
function whole(value: unknown, indent: string): string {
  return (JSON.stringify(value, null, 2) ?? 'null').replaceAll('\n', `\n${indent}`);
}

/** An object member by member; `streamed` writes the members it names in pieces of their own. */
function* object(value: object, indent: string, streamed: (key: string, value: unknown, indent: string) => Iterable<string> | undefined): Generator<string> {
  // JSON leaves out what it cannot write: undefined, functions, symbols
  const members = Object.entries(value).filter(([, v]) => v !== undefined && typeof v !== 'function' && typeof v !== 'symbol');
  if (members.length === 0) {
    yield '{}';
    return;
  }
  const inner = `${indent}  `;
  yield '{';
  for (const [i, [key, v]] of members.entries()) {
    yield `${i > 0 ? ',' : ''}\n${inner}${JSON.stringify(key)}: `;
    yield* streamed(key, v, inner) ?? [whole(v, inner)];
  }
  yield `\n${indent}}`;
}

function* array<T>(items: readonly T[], indent: string, item: (value: T, indent: string) => Iterable<string>): Generator<string> {
  if (items.length === 0) {
    yield '[]';
    return;
  }
  const inner = `${indent}  `;
  yield '[';
  for (const [i, value] of items.entries()) {
    yield `${i > 0 ? ',' : ''}\n${inner}`;
    yield* item(value, inner);
  }
  yield `\n${indent}]`;
}
