/**
 * Issue 22: the caps on one result file did not add up to a cap on a cell or a run. A cell keeps
 * cases while its budget (and its run's) lasts; past it, one coded case counts the rest.
 */
import { describe, expect, it } from 'vitest';
import { CaseBudget, CaseCollector, CELL_CASE_LIMITS, caseChars, RUN_CASE_LIMITS } from '../../../src/results/budget.js';
import type { TestCase } from '../../../src/results/types.js';

const cases = (n: number, over: Partial<TestCase> = {}): TestCase[] => Array.from({ length: n }, (_, i) => ({ name: `t${i}`, suite: 's', status: 'passed', file: '/r.xml', ...over }));

describe('case budgets', () => {
  it('counts the text a report writes per case: name, suite, message, details, file', () => {
    expect(caseChars({ name: 'ab', suite: 'cde', status: 'failed', message: 'f', details: 'gh', file: '/ij' })).toBe(11);
  });

  it('sane limits: a run holds at least two full cells, and its text fits one string merge can read', () => {
    expect(RUN_CASE_LIMITS.cases).toBeGreaterThanOrEqual(2 * CELL_CASE_LIMITS.cases);
    expect(RUN_CASE_LIMITS.chars).toBeGreaterThanOrEqual(2 * CELL_CASE_LIMITS.chars);
    expect(RUN_CASE_LIMITS.chars * 2).toBeLessThan(2 ** 29);
  });

  it('a cell past its count keeps no more cases: one coded case names RESULT_TOO_LARGE, the budget and how many were dropped', () => {
    const kept = new CaseCollector(new CaseBudget('cell', { cases: 5, chars: 1000 }));
    expect(kept.add(cases(3))).toBe(3);
    expect(kept.add(cases(4))).toBe(2);
    expect(kept.add(cases(10))).toBe(0);
    expect(kept.cases).toHaveLength(6);
    const coded = kept.cases.at(-1)!;
    expect(coded).toMatchObject({ name: '12 more cases not kept', status: 'error', file: '/r.xml' });
    expect(coded.message).toMatch(/^RESULT_TOO_LARGE: kvmtest keeps at most 5 cases or 1000 characters of case text per cell; 12 more/);
  });

  it('a cell past its characters stops too, even for later cases that would fit', () => {
    const kept = new CaseCollector(new CaseBudget('cell', { cases: 100, chars: 100 }));
    kept.add([...cases(2), { name: 'x'.repeat(200), suite: '', status: 'failed', file: '/big.xml' }, ...cases(3)]);
    expect(kept.cases.map((c) => c.name)).toEqual(['t0', 't1', '4 more cases not kept']);
    expect(kept.cases[2]!.file).toBe('/big.xml');
  });

  it("cells draw on one run budget; the run's limit is named when it is the run that is full", () => {
    const run = new CaseBudget('run', { cases: 250, chars: 2 ** 20 });
    const cells = [0, 1, 2].map(() => new CaseCollector(new CaseBudget('cell', { cases: 100, chars: 2 ** 20 }, run)));
    for (const cell of cells) cell.add(cases(100));
    expect(cells.map((c) => c.cases.length)).toEqual([100, 100, 51]);
    expect(cells[2]!.cases.at(-1)!.message).toMatch(/250 cases or 1 Mi characters of case text per run; 50 more/);
    expect(run.cases).toBe(250);
  });

  it("an attempt's release gives its share back to the run", () => {
    const run = new CaseBudget('run', { cases: 150, chars: 2 ** 20 });
    const first = new CaseBudget('cell', { cases: 100, chars: 2 ** 20 }, run);
    new CaseCollector(first).add(cases(100));
    first.release();
    expect([run.cases, run.chars, first.cases]).toEqual([0, 0, 0]);
    const again = new CaseCollector(new CaseBudget('cell', { cases: 100, chars: 2 ** 20 }, run));
    expect(again.add(cases(100))).toBe(100);
  });

  it('a refused case charges nothing: the cell that overflowed leaves the run room for another', () => {
    const run = new CaseBudget('run', { cases: 10, chars: 2 ** 20 });
    const big = new CaseCollector(new CaseBudget('cell', { cases: 4, chars: 2 ** 20 }, run));
    big.add(cases(8));
    const next = new CaseCollector(new CaseBudget('cell', { cases: 10, chars: 2 ** 20 }, run));
    expect(next.add(cases(8))).toBe(6);
  });
});
