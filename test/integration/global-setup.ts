import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { type BuiltImage, ensureImage } from '../../src/image/build.js';
import type { RecipeName } from '../../src/image/recipes.js';
import { defaultArch, type MachineArch } from '../../src/qemu/arch.js';

/** The other architectures' fixture images (test/integration/arch.test.ts boots them). */
export const FOREIGN_FIXTURES: readonly (readonly [RecipeName, MachineArch])[] = [
  ['debian-12', 'aarch64'],
  ['debian-13', 'riscv64'],
];

/**
 * Builds (or finds in the cache) the Debian 11, 12 and 13 images once for all integration files,
 * and the other architectures' images (debian-12 for aarch64, debian-13 for riscv64) beside them.
 */
export default async function setup(project: TestProject): Promise<() => void> {
  // guests of this run (and of the CLI processes it starts) keep their private dirs in a temp dir
  // of the run's own, so "nothing left behind" is checked against this run only
  const runTmp = mkdtempSync(join(tmpdir(), 'kvmtest-run-'));
  process.env.TMPDIR = runTmp;
  const build = async (name: RecipeName, arch: MachineArch): Promise<BuiltImage> => {
    const started = Date.now();
    const image = await ensureImage(name, { arch, onLine: (line) => process.stderr.write(`${line}\n`) });
    process.stderr.write(`[image] ${name} ${arch} fixture: ${image.disk} (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
    return image;
  };
  // two lanes: the native builds one after the other (two debootstraps on two cores are no faster),
  // and beside them the emulated ones, whose second stage runs mostly on one core under qemu-user
  const native = (async () => {
    const host = defaultArch() as MachineArch;
    const debian12 = await build('debian-12', host);
    for (const name of ['debian-11', 'debian-13'] as const) await build(name, host);
    return debian12;
  })();
  const foreign = (async () => {
    for (const [name, arch] of FOREIGN_FIXTURES) await build(name, arch);
  })();
  const [debian12] = await Promise.all([native, foreign]);
  project.provide('debian12', debian12!);
  return () => {
    const left = readdirSync(runTmp);
    rmSync(runTmp, { recursive: true, force: true });
    if (left.length > 0) throw new Error(`the integration run left files in its temp dir: ${left.join(', ')}`);
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    debian12: BuiltImage;
  }
}
