import type { TestProject } from 'vitest/node';
import { startPoolOwner } from '../pool/owner.js';
// the ProvidedContext key this setup provides is declared there
import type {} from './index.js';

/**
 * vitest globalSetup: one guest pool for the whole run, owned by vitest's main process, so every
 * worker's `freshGuestTest` takes its clones from it (a spare restored once, not one per worker).
 * `test: { globalSetup: ['kvmtest/vitest/pool-owner'] }`. $KVMTEST_POOL_SIZE sets the spares per starting point.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const size = process.env.KVMTEST_POOL_SIZE === undefined ? undefined : Number(process.env.KVMTEST_POOL_SIZE);
  const owner = await startPoolOwner(size === undefined ? {} : { size });
  project.provide('kvmtestPool', owner.socket);
  return () => owner.close();
}
