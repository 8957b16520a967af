import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { packageRoot } from '../host/paths.js';

/** Images kvmtest builds itself from Debian's archive (no image publisher needed). */
export const RECIPES = {
  'debian-11': { recipe: 'debian', suite: 'bullseye' },
  'debian-12': { recipe: 'debian', suite: 'bookworm' },
  'debian-13': { recipe: 'debian', suite: 'trixie' },
} as const;

export type RecipeName = keyof typeof RECIPES;

export function isRecipeName(name: string): name is RecipeName {
  return Object.hasOwn(RECIPES, name);
}

export function recipeDir(name: RecipeName): string {
  return join(packageRoot(), 'fixtures', 'images', RECIPES[name].recipe);
}

/** Digest of everything that shapes a built image: the recipe's files and the suite. */
export async function recipeKey(name: RecipeName): Promise<string> {
  const dir = recipeDir(name);
  const hash = createHash('sha256').update(`${name}\0${RECIPES[name].suite}\0`);
  for (const file of (await readdir(dir)).sort())
    hash
      .update(`${file}\0`)
      .update(await readFile(join(dir, file)))
      .update('\0');
  return hash.digest('hex').slice(0, 16);
}
