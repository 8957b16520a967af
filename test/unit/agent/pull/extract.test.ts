import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TreeExtractor } from '../../../../src/agent/pull/extract.js';
import { tarOf } from '../../fixtures/crafted-tar.js';
import { usePullPlaces } from '../../fixtures/pull-places.js';

const { place } = usePullPlaces();

describe('pull: backpressure', () => {
  it('the extractor takes the next chunk only when the last is on its way to disk', async () => {
    const { parent } = place();
    const root = join(parent, 'root');
    mkdirSync(root);
    const extractor = new TreeExtractor(root, join(parent, 'links'), 'dir');
    const stream = tarOf([{ path: 'big', body: Buffer.alloc(64 * 1024 * 1024, 1) }]);
    let maxAhead = 0;
    let refusedOnce = false;
    for (let at = 0; at < stream.length; at += 256 * 1024) {
      if (!extractor.write(stream.subarray(at, at + 256 * 1024))) {
        refusedOnce = true;
        await new Promise((resolve) => extractor.once('drain', resolve));
      }
      maxAhead = Math.max(maxAhead, Math.min(at + 256 * 1024, stream.length) - extractor.result.written);
    }
    await new Promise<void>((resolve) => extractor.end(resolve));
    expect(statSync(join(root, 'big')).size).toBe(64 * 1024 * 1024);
    expect(refusedOnce).toBe(true);
    expect(maxAhead).toBeLessThan(4 * 1024 * 1024);
  });
});
