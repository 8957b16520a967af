import { homedir } from 'node:os';
import { join } from 'node:path';

/** kvmtest's cache: $KVMTEST_CACHE, else $XDG_CACHE_HOME/kvmtest, else ~/.cache/kvmtest. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.KVMTEST_CACHE) return env.KVMTEST_CACHE;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'kvmtest');
}
