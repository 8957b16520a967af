import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { type BuiltImage, ensureImage } from '../../src/image/build.js';

/** Builds (or finds in the cache) the Debian 11, 12 and 13 images once for all integration files. */
export default async function setup(project: TestProject): Promise<() => void> {
  // guests of this run (and of the CLI processes it starts) keep their private dirs in a temp dir
  // of the run's own, so "nothing left behind" is checked against this run only
  const runTmp = mkdtempSync(join(tmpdir(), 'kvmtest-run-'));
  process.env.TMPDIR = runTmp;
  let debian12: BuiltImage | undefined;
  // one at a time: two debootstraps on two cores are no faster than one after the other
  for (const name of ['debian-12', 'debian-11', 'debian-13'] as const) {
    const started = Date.now();
    const image = await ensureImage(name, { onLine: (line) => process.stderr.write(`${line}\n`) });
    process.stderr.write(`[image] ${name} fixture: ${image.disk} (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
    if (name === 'debian-12') debian12 = image;
  }
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
