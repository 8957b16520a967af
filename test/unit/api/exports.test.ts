import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

// what a user can call at run time; a new export is a decision (issue #11: the public API stays narrow)
const MAIN = [
  'AbortedError',
  'AgentError',
  'BootError',
  'ExecResult',
  'Guest',
  'GuestCommandError',
  'GuestPool',
  'HostError',
  'ImageError',
  'InputError',
  'KvmtestError',
  'MachineError',
  'ResultError',
  'SharedGuestPool',
  'boot',
  'createTerminalReporter',
  'defineConfig',
  'githubAnnotations',
  'githubSummary',
  'isKvmtestError',
  'mergeReports',
  'reproCapsule',
  'runMatrix',
  'startPoolOwner',
  'summaryTable',
  'toHtml',
  'toJUnit',
];
const VITEST = ['freshGuestTest', 'guestTest', 'matrixCells', 'useGuest'];

const names = (module: object): string[] => Object.keys(module).sort();
const dist = new URL('../../../dist/', import.meta.url);

describe('public entries', () => {
  it('kvmtest exports exactly the user-facing values', async () => {
    expect(names(await import('../../../src/index.js'))).toEqual(MAIN);
  });

  it('kvmtest/vitest exports exactly its helpers', async () => {
    expect(names(await import('../../../src/vitest/index.js'))).toEqual(VITEST);
  });

  // `npm test` builds first; a bare `vitest run` on a fresh clone has no dist to check
  it.skipIf(!existsSync(new URL('index.js', dist)))('the built entries export the same', async () => {
    expect(names(await import(new URL('index.js', dist).href))).toEqual(MAIN);
    expect(names(await import(new URL('vitest/index.js', dist).href))).toEqual(VITEST);
    expect(names(await import(new URL('vitest/pool-owner.js', dist).href))).toEqual(['default']);
  });
});
