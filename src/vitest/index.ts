import { afterAll, beforeAll, inject, test } from 'vitest';
import { kvmtestError } from '../errors.js';
import { boot } from '../guest/boot.js';
import type { Checkpoint } from '../guest/checkpoint.js';
import type { Guest } from '../guest/guest.js';
import type { BootOptions } from '../guest/options.js';
import { cellBootOptions } from '../matrix/cell.js';
import { expandMatrix } from '../matrix/expand.js';
import type { CellSpec, MatrixOptions } from '../matrix/types.js';
import { GuestPool } from '../pool/pool.js';
import { type GuestSource, SharedGuestPool } from '../pool/shared.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The shared guest pool's socket, when the run has one (kvmtest/vitest/pool-owner as globalSetup). */
    kvmtestPool?: string;
  }
}

/** The image a test file gets when it does not say: $KVMTEST_IMAGE, else debian-12. */
const DEFAULT_TEST_IMAGE = process.env.KVMTEST_IMAGE ?? 'debian-12';

/**
 * `test` with a `guest` fixture: booted (from the warm snapshot) once per test file, disposed after
 * the file, even when a test throws. Choose the image and settings per file with
 * `guestTest.override({ guestOptions: { image: 'debian-13', cpus: 1 } })`.
 */
export const guestTest = test
  .extend('guestOptions', { scope: 'file' }, { image: DEFAULT_TEST_IMAGE, snapshot: true } as BootOptions)
  .extend('guest', { scope: 'file' }, async ({ guestOptions }, { onCleanup }): Promise<Guest> => {
    const vm = await boot({ snapshot: true, ...guestOptions });
    onCleanup(() => vm.dispose());
    return vm;
  });

/** A step run once per file in the file's guest before it is checkpointed: each test gets a clone of the result. */
export interface GuestPrepare {
  run?: (guest: Guest) => Promise<void>;
}

/**
 * `test` with a `guest` fixture that is **fresh for every test**: a clone of the file's starting
 * point, disposed after the test even when it throws. The starting point is the image's warm
 * snapshot, or its cached setup layer with `guestOptions.setup` (shared by every process and watch
 * re-run), or, with `guestPrepare.run`, a checkpoint taken once per file after that function ran.
 * The next clone is restored while the current test runs (a pool of one), so a test waits for none.
 * With `globalSetup: ['kvmtest/vitest/pool-owner']` the run's files share one pool in vitest's main
 * process (the warm snapshot and setup-layer starting points; a guestPrepare checkpoint stays per file).
 */
export const freshGuestTest = test
  .extend('guestOptions', { scope: 'file' }, { image: DEFAULT_TEST_IMAGE, snapshot: true } as BootOptions)
  .extend('guestPrepare', { scope: 'file' }, {} as GuestPrepare)
  .extend('guestPool', { scope: 'file' }, async ({ guestOptions, guestPrepare }, { onCleanup }): Promise<GuestSource> => {
    // the run's shared pool (globalSetup kvmtest/vitest/pool-owner) serves starting points on disk;
    // a checkpoint after this file's own JavaScript setup is this process's alone
    const shared = guestPrepare.run ? undefined : inject('kvmtestPool');
    if (shared) {
      const pool = await SharedGuestPool.connect(shared, { snapshot: true, ...guestOptions });
      onCleanup(() => pool.dispose());
      return pool;
    }
    let checkpoint: Checkpoint | undefined;
    if (guestPrepare.run) {
      const vm = await boot({ snapshot: true, ...guestOptions });
      try {
        await guestPrepare.run(vm);
        checkpoint = await vm.checkpoint();
      } finally {
        await vm.dispose();
      }
    }
    const from = checkpoint;
    const pool = new GuestPool(from ? () => from.boot() : () => boot({ snapshot: true, ...guestOptions })).warm();
    onCleanup(async () => {
      await pool.dispose();
      await from?.dispose();
    });
    return pool;
  })
  .extend('guest', async ({ guestPool }, { onCleanup }): Promise<Guest> => {
    const vm = await guestPool.take();
    onCleanup(() => vm.dispose());
    return vm;
  });

/** A matrix cell with the boot options it stands for, for `describe.each`. */
export interface TestCell extends CellSpec {
  boot: BootOptions;
}

/**
 * The cells of a matrix (images × axes, include/exclude as in runMatrix), each with its boot
 * options: `describe.each(matrixCells({ images: ['debian-11', 'debian-12'] }))('$id', (cell) => …)`.
 */
export function matrixCells(options: Pick<MatrixOptions, 'images' | 'vary' | 'include' | 'exclude' | 'boot' | 'snapshot'>): TestCell[] {
  return expandMatrix(options).map((cell) => ({ ...cell, boot: cellBootOptions(cell, options) }));
}

/**
 * Boots a guest for the enclosing describe block (beforeAll) and disposes it after (afterAll);
 * returns a getter for the tests in the block.
 */
export function useGuest(options: BootOptions): () => Guest {
  let vm: Guest | undefined;
  beforeAll(async () => {
    vm = await boot({ snapshot: true, ...options });
  });
  afterAll(async () => {
    await vm?.dispose();
  });
  return () => {
    if (!vm) throw kvmtestError('GUEST_NOT_READY', `the guest for ${options.image} is not booted: call the getter inside a test, not while collecting`);
    return vm;
  };
}
