import { readFile } from 'node:fs/promises';
import { dirname, extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { kvmtestError } from '../errors.js';
import { exists } from '../util/exists.js';
import type { MatrixOptions } from './types.js';

export const CONFIG_NAMES = ['kvmtest.config.ts', 'kvmtest.config.mts', 'kvmtest.config.js', 'kvmtest.config.mjs', 'kvmtest.config.json'];

/** A matrix configuration file: MatrixOptions without the callbacks. */
export type MatrixConfig = Omit<MatrixOptions, 'onEvent' | 'signal'>;

/** Types a kvmtest.config.ts: `export default defineConfig({ images: [...], run: [...] })`. */
export function defineConfig(config: MatrixConfig): MatrixConfig {
  return config;
}

/**
 * Loads the given config file, or the first kvmtest.config.* in `dir`; undefined when there is none
 * and none was named. TypeScript configs load through jiti (Node 20 cannot import .ts itself).
 */
export async function loadConfig(file: string | undefined, dir = process.cwd()): Promise<{ path: string; config: MatrixConfig } | undefined> {
  let path: string | undefined;
  if (file) {
    path = resolve(dir, file);
    if (!(await exists(path))) throw kvmtestError('CONFIG_INVALID', `No config file at ${path}`);
  } else {
    for (const name of CONFIG_NAMES)
      if (await exists(resolve(dir, name))) {
        path = resolve(dir, name);
        break;
      }
    if (!path) return undefined;
  }
  let loaded: unknown;
  try {
    const ext = extname(path);
    if (ext === '.json') loaded = JSON.parse(await readFile(path, 'utf8'));
    else if (ext === '.ts' || ext === '.mts' || ext === '.cts') {
      const { createJiti } = await import('jiti');
      loaded = await createJiti(import.meta.url, { moduleCache: false, fsCache: false }).import(path, { default: true });
    } else loaded = ((await import(pathToFileURL(path).href)) as { default?: unknown }).default;
  } catch (error) {
    throw kvmtestError('CONFIG_INVALID', `Could not load ${path}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  if (typeof loaded === 'function') loaded = await (loaded as () => unknown)();
  if (typeof loaded !== 'object' || loaded === null || Array.isArray(loaded)) {
    throw kvmtestError('CONFIG_INVALID', `${path} must export (default) an object of matrix options such as { images: ['debian-12'], run: ['npm', 'test'] }`);
  }
  return { path, config: { projectDir: dirname(path), ...(loaded as MatrixConfig) } };
}
