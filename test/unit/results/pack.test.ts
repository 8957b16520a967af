import { describe, expect, it } from 'vitest';
import { packCases, unpackCases } from '../../../src/results/pack.js';
import type { TestCase } from '../../../src/results/types.js';

describe("the worker's answer", () => {
  it('sends each distinct suite and file string once, however many cases share it, and unpacks to the same cases', () => {
    const suite = 's'.repeat(2001);
    const file = `/work/${'p'.repeat(1500)}/junit.xml`;
    const cases: TestCase[] = Array.from({ length: 1000 }, (_, i) => ({ name: 't', suite: i % 2 ? suite : 'other', status: 'passed', file, ...(i === 3 ? { message: 'm', durationMs: 4 } : {}) }));
    const packed = packCases(cases);
    expect(packed.strings).toEqual(['other', file, suite]);
    // what a structured clone copies: the table once, then small numbers per case
    expect(JSON.stringify(packed).length).toBeLessThan(suite.length + file.length + 60_000);
    expect(unpackCases(packed)).toEqual(cases);
  });
});
