import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CapsuleLedger, decideCapsule, ledgerOf, saveCellCapsule } from '../../../src/matrix/capsule.js';
import { DEFAULT_CAPSULE_BUDGET_MIB, resolveMatrixOptions } from '../../../src/matrix/options.js';

// a capsule's worst case is what the test says (no machine behind the fake guests)
const worstCase = vi.hoisted(() => ({ bytes: 0 }));
vi.mock('../../../src/capsule/save.js', async (original) => ({ ...(await original<object>()), capsuleWorstCase: async () => worstCase.bytes }));
vi.mock('../../../src/guest/guest.js', async (original) => ({ ...(await original<object>()), machineOf: () => ({}) }));

const MiB = 2 ** 20;
const GiB = 2 ** 30;

describe('decideCapsule: save, or say why not', () => {
  const room = { freeBytes: 100 * GiB, usedBytes: 0, pendingBytes: 0, budgetBytes: 8 * GiB, worstCaseBytes: 2 * GiB };

  it('saves what fits in the budget and in the free space', () => {
    expect(decideCapsule(room)).toEqual({ save: true });
    expect(decideCapsule({ ...room, usedBytes: 6 * GiB })).toEqual({ save: true });
    expect(decideCapsule({ ...room, freeBytes: 2 * GiB })).toEqual({ save: true });
  });

  it("skips one past the run's budget, naming the option", () => {
    const decision = decideCapsule({ ...room, usedBytes: 6 * GiB + 1 });
    expect(decision).toEqual({
      save: false,
      reason: expect.stringMatching(/^no capsule: it may take up to 2048 MiB, and this run's capsules already take 6144 MiB of their 8192 MiB budget \(capsuleBudget, --capsule-budget\)$/),
    });
  });

  it('skips one the filesystem has no room for, counting what saves in flight were promised', () => {
    expect(decideCapsule({ ...room, freeBytes: 2 * GiB - 1 })).toEqual({
      save: false,
      reason: expect.stringMatching(/^no capsule: it may take up to 2048 MiB, and the output filesystem has 2048 MiB free$/),
    });
    expect(decideCapsule({ ...room, freeBytes: 3 * GiB, usedBytes: 2 * GiB, pendingBytes: 2 * GiB })).toEqual({
      save: false,
      reason: expect.stringMatching(/has 3072 MiB free \(2048 MiB of it promised to capsules being saved\)$/),
    });
  });
});

describe('CapsuleLedger: what one run holds', () => {
  it('counts a save by its worst case while it runs, then by its size; a removed capsule not at all', () => {
    const ledger = new CapsuleLedger(8 * GiB);
    ledger.reserve('/out/cells/a/capsule', 2 * GiB);
    ledger.reserve('/out/cells/b/capsule', 1 * GiB);
    expect([ledger.usedBytes, ledger.pendingBytes]).toEqual([3 * GiB, 3 * GiB]);
    ledger.settle('/out/cells/a/capsule', 300 * MiB);
    expect([ledger.usedBytes, ledger.pendingBytes]).toEqual([GiB + 300 * MiB, GiB]);
    ledger.release('/out/cells/b/capsule');
    expect([ledger.usedBytes, ledger.pendingBytes]).toEqual([300 * MiB, 0]);
  });

  it('is one per run (resolved options object), budget from the options', () => {
    const run = { capsuleEnv: false, capsuleBudgetMiB: 1024 };
    expect(ledgerOf(run)).toBe(ledgerOf(run));
    expect(ledgerOf(run).budgetBytes).toBe(GiB);
    expect(ledgerOf({ ...run })).not.toBe(ledgerOf(run));
  });
});

describe('matrix options capsuleEnv and capsuleBudget', () => {
  const base = { images: ['debian-12'], run: ['true'] };

  it('default to names only and 8 GiB', () => {
    expect(resolveMatrixOptions(base)).toMatchObject({ capsuleEnv: false, capsuleBudgetMiB: DEFAULT_CAPSULE_BUDGET_MIB });
    expect(DEFAULT_CAPSULE_BUDGET_MIB).toBe(8192);
  });

  it('take a boolean and a size (a number is MiB)', () => {
    expect(resolveMatrixOptions({ ...base, capsuleEnv: true, capsuleBudget: '20G' })).toMatchObject({ capsuleEnv: true, capsuleBudgetMiB: 20 * 1024 });
    expect(resolveMatrixOptions({ ...base, capsuleBudget: 512 }).capsuleBudgetMiB).toBe(512);
  });

  it('refuse anything else, naming the option', () => {
    expect(() => resolveMatrixOptions({ ...base, capsuleEnv: 'yes' as never })).toThrowError(
      expect.objectContaining({ code: 'INVALID_OPTION', message: 'Expected the "capsuleEnv" option to be a boolean, got "yes" (string)' }),
    );
    for (const capsuleBudget of ['lots', -1, '1K', true])
      expect(() => resolveMatrixOptions({ ...base, capsuleBudget: capsuleBudget as never })).toThrowError(
        expect.objectContaining({ code: 'INVALID_OPTION', message: expect.stringMatching(/^Expected the "capsuleBudget" option to be a size/) }),
      );
  });
});

describe('saveCellCapsule under the budget', () => {
  let out: string;
  beforeEach(() => {
    out = mkdtempSync(join(tmpdir(), 'kvmtest-unit-budget-'));
  });
  afterEach(() => rmSync(out, { recursive: true, force: true }));

  /** A running guest whose save writes a capsule of `bytes`. */
  const fakeGuest = (bytes: number) => {
    const guest = {
      state: 'running',
      dispose: vi.fn(async () => {}),
      saveCapsule: vi.fn(async (dir: string, _options: { notes: { envValues?: boolean } }) => {
        mkdirSync(dir);
        return { dir, bytes, stateBytes: bytes, tookMs: 12.3 };
      }),
    };
    return guest;
  };
  const cellDir = (id: string) => {
    const dir = join(out, 'cells', id);
    mkdirSync(dir, { recursive: true });
    return dir;
  };
  const notes = { cell: { id: 'a', status: 'failed', attempt: 1 }, env: { TOKEN: 'x' } };

  it('saves while the run has budget, then says why not; the guest is disposed, the cell goes on', async () => {
    const run = { capsuleEnv: false, capsuleBudgetMiB: 3 * 1024 };
    worstCase.bytes = GiB + 256 * MiB;
    const first = fakeGuest(200 * MiB);
    expect(await saveCellCapsule(first as never, cellDir('a'), notes, undefined, run)).toEqual({ dir: join(out, 'cells', 'a', 'capsule'), bytes: 200 * MiB, tookMs: 12 });
    expect(first.saveCapsule.mock.calls[0]![1].notes.envValues).toBe(false);
    const second = fakeGuest(200 * MiB);
    expect(await saveCellCapsule(second as never, cellDir('b'), notes, undefined, run)).toMatchObject({ bytes: 200 * MiB });
    // 400 MiB held (the saves' real sizes, not their worst cases): 2.75 GiB more does not fit in 3 GiB
    worstCase.bytes = 2 * GiB + 768 * MiB;
    const third = fakeGuest(200 * MiB);
    const skipped = await saveCellCapsule(third as never, cellDir('c'), notes, undefined, run);
    expect(skipped).toEqual({ error: expect.stringMatching(/^no capsule: it may take up to 2816 MiB, and this run's capsules already take 400 MiB of their 3072 MiB budget/) });
    expect(third.saveCapsule).not.toHaveBeenCalled();
    expect(third.dispose).toHaveBeenCalled();
    // another run has its own budget
    expect(await saveCellCapsule(fakeGuest(1) as never, cellDir('d'), notes, undefined, { ...run })).toMatchObject({ bytes: 1 });
  });

  it("a retry's capsule replaces the earlier one in the count; capsuleEnv keeps the values", async () => {
    const run = { capsuleEnv: true, capsuleBudgetMiB: 1024 };
    worstCase.bytes = 600 * MiB;
    const dir = cellDir('flaky');
    const first = fakeGuest(500 * MiB);
    expect(await saveCellCapsule(first as never, dir, notes, undefined, run)).toMatchObject({ bytes: 500 * MiB });
    expect(first.saveCapsule.mock.calls[0]![1].notes.envValues).toBe(true);
    expect(await saveCellCapsule(fakeGuest(500 * MiB) as never, dir, notes, undefined, run)).toMatchObject({ bytes: 500 * MiB });
    expect(ledgerOf(run).usedBytes).toBe(500 * MiB);
  });

  it('a failed save gives back what it was promised', async () => {
    const run = { capsuleEnv: false, capsuleBudgetMiB: 1024 };
    worstCase.bytes = 600 * MiB;
    const failing = fakeGuest(0);
    failing.saveCapsule.mockRejectedValueOnce(Object.assign(new Error('QEMU went away'), { code: 'CAPSULE_FAILED' }));
    expect(await saveCellCapsule(failing as never, cellDir('e'), notes, undefined, run)).toEqual({ error: expect.stringMatching(/QEMU went away/) });
    expect(ledgerOf(run).usedBytes).toBe(0);
  });

  it('without the run: names only, free space still checked', async () => {
    worstCase.bytes = Number.MAX_SAFE_INTEGER;
    const guest = fakeGuest(1);
    expect(await saveCellCapsule(guest as never, cellDir('f'), notes, undefined)).toEqual({ error: expect.stringMatching(/the output filesystem has .* MiB free$/) });
    worstCase.bytes = 1;
    const saved = fakeGuest(1);
    await saveCellCapsule(saved as never, cellDir('f'), notes, undefined);
    expect(saved.saveCapsule.mock.calls[0]![1].notes.envValues).toBe(false);
  });
});
