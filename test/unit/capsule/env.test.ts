import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkManifest, readManifest, renderManifest } from '../../../src/capsule/manifest.js';
import { capsuleWorstCase, manifestEnv } from '../../../src/capsule/save.js';
import { capsuleManifestOf } from '../fixtures/capsule.js';
import { useTempRoots } from '../fixtures/temp-roots.js';

const roots = useTempRoots();
const env = { NPM_TOKEN: 's3cret', CI: '1', KVMTEST_CELL: 'debian-12' };

describe("a capsule's env: names by default, values only when asked", () => {
  it('keeps the names in order and leaves every value out', () => {
    expect(manifestEnv({ env })).toEqual({ envNames: ['NPM_TOKEN', 'CI', 'KVMTEST_CELL'] });
    expect(manifestEnv({ env, envValues: false })).toEqual({ envNames: ['NPM_TOKEN', 'CI', 'KVMTEST_CELL'] });
    expect(JSON.stringify(manifestEnv({ env }))).not.toContain('s3cret');
  });

  it('keeps the values with envValues, and writes nothing without an env', () => {
    expect(manifestEnv({ env, envValues: true })).toEqual({ env });
    expect(manifestEnv({})).toEqual({});
    expect(manifestEnv({ envValues: true })).toEqual({});
  });

  it('a manifest with env names reads back; one with values (older capsules, --capsule-env) still does', () => {
    const { env: _, ...withoutEnv } = capsuleManifestOf();
    const named = { ...withoutEnv, ...manifestEnv({ env }) };
    expect(checkManifest(JSON.parse(renderManifest(named)))).toEqual(named);
    const old = capsuleManifestOf();
    expect(old.env).toBeDefined();
    expect(checkManifest(old)).toBe(old);
  });

  it('refuses names that are not strings, and names beside values', () => {
    const { env: _, ...m } = capsuleManifestOf();
    expect(() => checkManifest({ ...m, envNames: ['CI', 3] }, '/caps/one')).toThrowError(
      expect.objectContaining({ code: 'CAPSULE_DAMAGED', message: expect.stringMatching(/"envNames" should be as kvmtest writes it/) }),
    );
    expect(() => checkManifest({ ...m, envNames: 'CI' })).toThrowError(expect.objectContaining({ code: 'CAPSULE_DAMAGED' }));
    expect(() => checkManifest({ ...capsuleManifestOf(), envNames: ['CI'] })).toThrowError(
      expect.objectContaining({ code: 'CAPSULE_DAMAGED', message: expect.stringMatching(/"envNames" should be absent when "env" is there/) }),
    );
  });

  it('readManifest reads a capsule written with names only', async () => {
    const dir = roots.makeRoot();
    const { env: _, ...m } = capsuleManifestOf();
    writeFileSync(join(dir, 'manifest.json'), renderManifest({ ...m, envNames: ['CI'] }));
    expect((await readManifest(dir)).envNames).toEqual(['CI']);
  });
});

describe("a capsule's worst case: what a save is promised room for", () => {
  it('is the state cap (memory + 256 MiB), the layers over the bottom one and the mounted disks as allocated, and 128 MiB of small files', async () => {
    const dir = roots.makeRoot();
    const file = (name: string, bytes: number) => {
      const path = join(dir, name);
      writeFileSync(path, Buffer.alloc(bytes, 1));
      return path;
    };
    const top = file('top.qcow2', 1 << 20);
    const layer = file('snapshot.qcow2', 2 << 20);
    const view = file('toolchain.img', 3 << 20);
    const machine = {
      disk: {
        node: 'disk',
        path: top,
        chain: [
          { path: layer, format: 'qcow2' as const },
          { path: join(dir, 'base-is-not-counted'), format: 'qcow2' as const },
        ],
      },
      views: new Map([[1, { image: view, format: 'raw' as const }]]),
      spec: { memoryMiB: 1024 },
    };
    // allocated bytes at least the written ones (a filesystem may round up to its blocks)
    const bytes = await capsuleWorstCase(machine as never);
    const fixed = (1024 + 256 + 128) * 2 ** 20;
    expect(bytes).toBeGreaterThanOrEqual(fixed + (6 << 20));
    expect(bytes).toBeLessThan(fixed + (7 << 20));
  });
});
