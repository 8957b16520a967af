import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kvmtestError } from '../errors.js';

/** kvmtest's cache: $KVMTEST_CACHE, else $XDG_CACHE_HOME/kvmtest, else ~/.cache/kvmtest. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.KVMTEST_CACHE) return env.KVMTEST_CACHE;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'kvmtest');
}

let root: string | undefined;

/** The kvmtest package's folder (holding guest/ and fixtures/), from the source tree or from dist/. */
export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === 'kvmtest') return (root = dir);
    const parent = dirname(dir);
    if (parent === dir) throw kvmtestError('INTERNAL', 'kvmtest: cannot find the package folder (package.json named kvmtest)');
    dir = parent;
  }
}
