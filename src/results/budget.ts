// How many parsed cases, and how much of their text, a cell and a whole run keep: the caps on one
// result file do not add up to a cap on a run (a guest can write many files, a matrix has many cells).
import type { TestCase } from './types.js';

export interface CaseLimits {
  /** Cases kept. */
  cases: number;
  /** Characters of case text kept: name + suite + message + details + file of each case, as a report writes them. */
  chars: number;
}

const MI = 2 ** 20;
/** A cell keeps a big suite whole (100,000 cases of ~650 characters each); past it, a guest is writing to fill the host. */
export const CELL_CASE_LIMITS: CaseLimits = { cases: 100_000, chars: 64 * MI };
/** A run: at most 256 MiB of case text in the heap, and a JSON report that `kvmtest merge` can still read as one string (V8: 512 Mi characters). */
export const RUN_CASE_LIMITS: CaseLimits = { cases: 250_000, chars: 128 * MI };

/** The characters a case adds to a report's text. Pure. */
export function caseChars(c: TestCase): number {
  return c.name.length + c.suite.length + (c.message?.length ?? 0) + (c.details?.length ?? 0) + c.file.length;
}

/**
 * What is left of a budget of cases and characters, nested: a cell's budget draws on its run's, so
 * every cell of a run shares one run budget. Each take is charged to the whole chain or not at all.
 */
export class CaseBudget {
  cases = 0;
  chars = 0;

  constructor(
    /** 'cell' or 'run': what the coded case names. */
    readonly scope: string,
    readonly limits: CaseLimits,
    readonly parent?: CaseBudget,
  ) {}

  /** Charges one case of `chars` characters to this budget and its parents; the one without room for it (nothing charged then), or undefined. */
  take(chars: number): CaseBudget | undefined {
    for (let b: CaseBudget | undefined = this; b; b = b.parent) {
      if (b.cases + 1 > b.limits.cases || b.chars + chars > b.limits.chars) return b;
    }
    for (let b: CaseBudget | undefined = this; b; b = b.parent) {
      b.cases += 1;
      b.chars += chars;
    }
    return undefined;
  }

  /** Gives back to the parents all this budget took (an attempt whose cases the report will not keep); this one starts over. */
  release(): void {
    for (let b = this.parent; b; b = b.parent) {
      b.cases -= this.cases;
      b.chars -= this.chars;
    }
    this.cases = 0;
    this.chars = 0;
  }

  /** The limits in words: "100000 cases or 64 Mi characters of case text per cell". */
  describe(): string {
    return `${this.limits.cases} cases or ${formatChars(this.limits.chars)} of case text per ${this.scope}`;
  }
}

function formatChars(chars: number): string {
  return chars >= MI && chars % MI === 0 ? `${chars / MI} Mi characters` : `${chars} characters`;
}

/**
 * The cases one cell keeps, while its budget (and its run's) lasts. Past it no case is kept: one
 * coded case (RESULT_TOO_LARGE, status error) stands for all the rest and counts them.
 */
export class CaseCollector {
  readonly cases: TestCase[] = [];
  #overflow: { stands: TestCase; dropped: number; by: CaseBudget } | undefined;

  constructor(readonly budget: CaseBudget) {}

  /** Adds a file's cases as far as the budget goes; returns how many were kept. */
  add(parsed: readonly TestCase[]): number {
    let kept = 0;
    for (const c of parsed) {
      const refused = this.#overflow ? this.#overflow.by : this.budget.take(caseChars(c));
      if (!refused) {
        this.cases.push(c);
        kept += 1;
        continue;
      }
      if (!this.#overflow) {
        this.#overflow = { stands: { name: '', suite: '', status: 'error', file: c.file }, dropped: 0, by: refused };
        this.cases.push(this.#overflow.stands);
      }
      this.#overflow.dropped += 1;
    }
    if (this.#overflow) this.#describeOverflow();
    return kept;
  }

  #describeOverflow(): void {
    const { stands, dropped, by } = this.#overflow!;
    stands.name = `${dropped} more ${dropped === 1 ? 'case' : 'cases'} not kept`;
    stands.message = `RESULT_TOO_LARGE: kvmtest keeps at most ${by.describe()}; ${dropped} more parsed ${dropped === 1 ? 'case was' : 'cases were'} counted, not kept (the collected files hold them all)`;
  }
}
