/**
 * A hostile guest's flood of tar headers (issue 22: a million empty files in a collected directory):
 * the extractor counts each member as the parser meets it, so the stream is refused right after the
 * 100 000th, and no more than one slice's members wait at once, so host memory stays flat.
 */
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Header } from 'tar';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, SLICE_BYTES, TreeExtractor } from '../../../../src/agent/pull/extract.js';
import { usePullPlaces } from '../../fixtures/pull-places.js';
import { describeCost, measured } from './memory.js';

const { place } = usePullPlaces();

/** `total` empty-file headers, made as they are asked for, `perChunk` to a chunk. */
function* headers(total: number, perChunk: number): Generator<Buffer> {
  for (let n = 0; n < total; ) {
    const chunk = Buffer.alloc(perChunk * 512);
    for (let i = 0; i < perChunk && n < total; i++, n++) new Header({ path: `f${n}`, mode: 0o644, size: 0, type: 'File', mtime: new Date(1e12) }).encode(chunk, i * 512);
    yield chunk;
  }
}

describe('pull: a flood of a million empty-file headers', () => {
  it('in 1 MiB frames (the largest body a frame may have, 2048 headers each): refused PULL_TOO_MANY_ENTRIES just after the 100 000th, with flat memory', async () => {
    const perChunk = 2048;
    const { parent } = place();
    const root = join(parent, 'root');
    mkdirSync(root);
    const extractor = new TreeExtractor(root, join(parent, 'links'), 'dir');
    const failed = new Promise<Error>((resolve) => extractor.once('error', resolve));
    let fed = 0;
    const cost = await measured(async () => {
      for (const chunk of headers(1_000_000, perChunk)) {
        if (extractor.destroyed) break;
        fed += chunk.length / 512;
        if (!extractor.write(chunk)) {
          await new Promise((resolve) => {
            extractor.once('drain', resolve);
            extractor.once('error', resolve);
          });
        }
      }
      return failed;
    });
    await extractor.dispose();
    const error = cost.value;
    console.log(`1 000 000 headers in ${perChunk * 512} B chunks: ${(error as { code?: string }).code} after ${fed} were fed, at most ${extractor.peakWaiting} members waiting; ${describeCost(cost)}`);
    expect(error).toMatchObject({ code: 'PULL_TOO_MANY_ENTRIES' });
    // the chunk that held the 100 001st member is the last one taken
    expect(fed).toBeLessThanOrEqual(DEFAULT_LIMITS.maxEntries + perChunk);
    expect(extractor.peakWaiting).toBeLessThanOrEqual(SLICE_BYTES / 512 + 1);
    expect(cost.heldHeapMiB).toBeLessThan(16);
    expect(cost.peakHeapMiB).toBeLessThan(128);
    expect(readdirSync(root).length).toBeLessThanOrEqual(DEFAULT_LIMITS.maxEntries);
  }, 180_000);
});
