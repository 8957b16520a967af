import type { TestProject } from 'vitest/node';
import { ensureImage, type BuiltImage } from '../../src/image/build.js';

/** Builds (or finds in the cache) the Debian 12 fixture image once for all integration files. */
export default async function setup(project: TestProject): Promise<void> {
  const started = Date.now();
  const image = await ensureImage('debian-12', { onLine: (line) => process.stderr.write(`${line}\n`) });
  process.stderr.write(`[image] debian-12 fixture: ${image.disk} (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
  project.provide('debian12', image);
}

declare module 'vitest' {
  export interface ProvidedContext {
    debian12: BuiltImage;
  }
}
