import { describe, expect, it } from 'vitest';
import { CATALOG } from '../../../src/image/catalog.js';
import { checkRecipeArch, debianArch, RECIPES, recipeHasArch, recipeKey } from '../../../src/image/recipes.js';

describe('recipes per architecture', () => {
  it('every Debian release builds for x86_64 and aarch64; riscv64 from trixie (13) on, as the archive has it', () => {
    expect(RECIPES['debian-11'].arches).toEqual(['x86_64', 'aarch64']);
    expect(RECIPES['debian-12'].arches).toEqual(['x86_64', 'aarch64']);
    expect(RECIPES['debian-13'].arches).toEqual(['x86_64', 'aarch64', 'riscv64']);
    expect(recipeHasArch('debian-13', 'riscv64')).toBe(true);
    expect(recipeHasArch('debian-12', 'riscv64')).toBe(false);
  });

  it('an architecture a release lacks is IMAGE_UNKNOWN naming the ones it has', () => {
    expect(checkRecipeArch('debian-13', 'riscv64')).toBe('riscv64');
    expect(() => checkRecipeArch('debian-12', 'riscv64')).toThrowError(
      expect.objectContaining({ code: 'IMAGE_UNKNOWN', message: expect.stringMatching(/builds debian-12 for x86_64, aarch64, not riscv64/) }),
    );
    expect(() => checkRecipeArch('debian-12', 'arm64')).toThrowError(expect.objectContaining({ code: 'IMAGE_UNKNOWN' }));
  });

  it("hands the build script Debian's architecture names", () => {
    expect(['x86_64', 'aarch64', 'riscv64'].map((a) => debianArch(a as never))).toEqual(['amd64', 'arm64', 'riscv64']);
  });

  it('keys each architecture apart (a cache holds one build of each), and the same inputs alike', async () => {
    const keys = await Promise.all(RECIPES['debian-13'].arches.map((arch) => recipeKey('debian-13', arch)));
    expect(new Set(keys).size).toBe(3);
    expect(await recipeKey('debian-13', 'aarch64')).toBe(keys[1]);
    expect(await recipeKey('debian-12', 'aarch64')).not.toBe(keys[1]);
  });

  it("a catalog release kvmtest can also build has the catalog's architectures (its offline fallback)", () => {
    for (const [name, recipe] of Object.entries(RECIPES)) {
      const entry = CATALOG.find((e) => e.name === name);
      if (!entry) continue;
      for (const arch of Object.keys(entry.arches)) expect(recipe.arches as readonly string[]).toContain(arch);
    }
  });
});
