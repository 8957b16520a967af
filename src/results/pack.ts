// The parsed cases of one file as the worker posts them: a structured clone copies a string once per
// place it occurs, so each case's suite and file go as an index into one table of distinct strings.
import type { TestCase } from './types.js';

type PackedCase = Omit<TestCase, 'suite' | 'file'> & { suite: number; file: number };

export interface PackedCases {
  /** Every distinct suite and file string, once. */
  strings: string[];
  cases: PackedCase[];
}

/** Cases → their wire form. Pure. */
export function packCases(cases: readonly TestCase[]): PackedCases {
  const index = new Map<string, number>();
  const strings: string[] = [];
  const at = (text: string): number => {
    let i = index.get(text);
    if (i === undefined) {
      i = strings.push(text) - 1;
      index.set(text, i);
    }
    return i;
  };
  return { strings, cases: cases.map((c) => ({ ...c, suite: at(c.suite), file: at(c.file) })) };
}

/** The wire form → cases whose equal suites and files are one string object each. Pure. */
export function unpackCases({ strings, cases }: PackedCases): TestCase[] {
  return cases.map((c) => ({ ...c, suite: strings[c.suite] ?? '', file: strings[c.file] ?? '' }));
}
