import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { ensureImage, type BuiltImage } from '../../src/image/build.js';

/** Builds (or finds in the cache) the Debian 12 fixture image once for all integration files. */
export default async function setup(project: TestProject): Promise<() => void> {
  // guests of this run (and of the CLI processes it starts) keep their private dirs in a temp dir
  // of the run's own, so "nothing left behind" is checked against this run only
  const runTmp = mkdtempSync(join(tmpdir(), 'kvmtest-run-'));
  process.env.TMPDIR = runTmp;
  const started = Date.now();
  const image = await ensureImage('debian-12', { onLine: (line) => process.stderr.write(`${line}\n`) });
  process.stderr.write(`[image] debian-12 fixture: ${image.disk} (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
  project.provide('debian12', image);
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
