import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/matrix/config.js';

describe('CLI helpers', () => {
  it('loads a TypeScript config, relative to its folder', async () => {
    const dir = join(import.meta.dirname, '../../../fixtures/sample-project');
    const loaded = await loadConfig(undefined, dir);
    expect(loaded?.path).toBe(join(dir, 'kvmtest.config.ts'));
    expect(loaded?.config).toMatchObject({ images: ['debian-11', 'debian-12', 'debian-13'], projectDir: dir, collect: ['/work/results'] });
    const json = await loadConfig('kvmtest.node.json', dir);
    expect(json?.config).toMatchObject({ node: 'host', run: ['npm', 'test'] });
    await expect(loadConfig('missing.json', dir)).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });
});
