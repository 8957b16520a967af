import { readFile } from 'node:fs/promises';
import { kvmtestError } from '../errors.js';
import { CATALOG, type CatalogEntry } from './catalog.js';

/**
 * The built-in catalog, with the entries of $KVMTEST_CATALOG (a JSON array of catalog entries, for
 * a private mirror or images of your own) added, replacing built-in ones of the same name.
 */
export async function loadCatalog(env: NodeJS.ProcessEnv = process.env): Promise<CatalogEntry[]> {
  const file = env.KVMTEST_CATALOG;
  if (!file) return [...CATALOG];
  let extra: unknown;
  try {
    extra = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw kvmtestError('CONFIG_INVALID', `cannot read the catalog in $KVMTEST_CATALOG (${file}): ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!Array.isArray(extra) || !extra.every((e) => typeof e === 'object' && e !== null && typeof (e as CatalogEntry).name === 'string' && typeof (e as CatalogEntry).arches === 'object')) {
    throw kvmtestError('CONFIG_INVALID', `$KVMTEST_CATALOG (${file}) must hold a JSON array of catalog entries, each with a name and arches`);
  }
  const mine = extra as CatalogEntry[];
  return [...CATALOG.filter((e) => !mine.some((m) => m.name === e.name)), ...mine];
}
