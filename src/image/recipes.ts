import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { kvmtestError } from '../errors.js';
import { packageRoot } from '../host/paths.js';
import { ARCH_MACHINES, type MachineArch } from '../qemu/arch.js';

/**
 * Images kvmtest builds itself from Debian's archive (no image publisher needed), for each
 * architecture the archive has for that release (riscv64 is a release architecture from trixie on).
 */
export const RECIPES = {
  'debian-11': { recipe: 'debian', suite: 'bullseye', arches: ['x86_64', 'aarch64'] },
  'debian-12': { recipe: 'debian', suite: 'bookworm', arches: ['x86_64', 'aarch64'] },
  'debian-13': { recipe: 'debian', suite: 'trixie', arches: ['x86_64', 'aarch64', 'riscv64'] },
} as const satisfies Record<string, { recipe: string; suite: string; arches: readonly MachineArch[] }>;

export type RecipeName = keyof typeof RECIPES;

export function isRecipeName(name: string): name is RecipeName {
  return Object.hasOwn(RECIPES, name);
}

/** Whether kvmtest can build this image for this architecture. Pure. */
export function recipeHasArch(name: RecipeName, arch: string): arch is MachineArch {
  return (RECIPES[name].arches as readonly string[]).includes(arch);
}

/** The architecture checked against the recipe: IMAGE_UNKNOWN naming the ones it has. Pure. */
export function checkRecipeArch(name: RecipeName, arch: string): MachineArch {
  if (!recipeHasArch(name, arch)) {
    throw kvmtestError('IMAGE_UNKNOWN', `kvmtest builds ${name} for ${RECIPES[name].arches.join(', ')}, not ${arch} (Debian ${RECIPES[name].suite} has no ${arch} release in its archive)`);
  }
  return arch;
}

/** Debian's name for the architecture, as the recipe's build script takes it. Pure. */
export function debianArch(arch: MachineArch): string {
  return ARCH_MACHINES[arch].debianArch;
}

export function recipeDir(name: RecipeName): string {
  return join(packageRoot(), 'fixtures', 'images', RECIPES[name].recipe);
}

/** Digest of everything that shapes a built image: the recipe's files, the suite and the architecture. */
export async function recipeKey(name: RecipeName, arch: MachineArch): Promise<string> {
  const dir = recipeDir(name);
  const hash = createHash('sha256').update(`${name}\0${RECIPES[name].suite}\0${arch}\0`);
  for (const file of (await readdir(dir)).sort())
    hash
      .update(`${file}\0`)
      .update(await readFile(join(dir, file)))
      .update('\0');
  return hash.digest('hex').slice(0, 16);
}
