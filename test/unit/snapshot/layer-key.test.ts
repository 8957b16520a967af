import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type SetupStep, setupLabel, setupLayerKey, treeDigest } from '../../../src/snapshot/layer-key.js';

const work = mkdtempSync(join(tmpdir(), 'kvmtest-unit-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const step: SetupStep = { push: [{ source: '/host/app', dest: '/opt/app' }], run: 'make install', env: { A: '1' }, timeoutMs: 60_000 };

describe('setupLayerKey', () => {
  it('is stable for the same parent, command, env, cwd and content', () => {
    expect(setupLayerKey('p', step, ['d1'])).toBe(setupLayerKey('p', { ...step, env: { A: '1' } }, ['d1']));
    expect(setupLayerKey('p', step, ['d1'])).toMatch(/^[0-9a-f]{24}$/);
  });

  it('changes with the parent, the command, env, cwd, the destination and the pushed content', () => {
    const key = setupLayerKey('p', step, ['d1']);
    expect(setupLayerKey('q', step, ['d1'])).not.toBe(key);
    expect(setupLayerKey('p', { ...step, run: 'make' }, ['d1'])).not.toBe(key);
    expect(setupLayerKey('p', { ...step, run: ['make', 'install'] }, ['d1'])).not.toBe(key);
    expect(setupLayerKey('p', { ...step, env: { A: '2' } }, ['d1'])).not.toBe(key);
    expect(setupLayerKey('p', { ...step, cwd: '/opt' }, ['d1'])).not.toBe(key);
    expect(setupLayerKey('p', { ...step, push: [{ source: '/host/app', dest: '/srv/app' }] }, ['d1'])).not.toBe(key);
    expect(setupLayerKey('p', step, ['d2'])).not.toBe(key);
  });

  it('ignores what shapes no guest state: the timeout and where the pushed content lives on the host', () => {
    const key = setupLayerKey('p', step, ['d1']);
    expect(setupLayerKey('p', { ...step, timeoutMs: 1 }, ['d1'])).toBe(key);
    expect(setupLayerKey('p', { ...step, push: [{ source: '/elsewhere/app', dest: '/opt/app' }] }, ['d1'])).toBe(key);
  });
});

describe('setupLabel', () => {
  it('is the command on one line, cut at 60 characters', () => {
    expect(setupLabel({ ...step, run: ['npm', 'ci'] })).toBe('npm ci');
    expect(setupLabel({ ...step, run: 'apt-get update &&\n  apt-get install -y gcc' })).toBe('apt-get update && apt-get install -y gcc');
    expect(setupLabel({ ...step, run: 'x'.repeat(100) })).toHaveLength(60);
  });
});

describe('treeDigest', () => {
  const tree = (name: string) => {
    const dir = join(work, name);
    mkdirSync(join(dir, 'sub'), { recursive: true });
    writeFileSync(join(dir, 'a.txt'), 'alpha');
    writeFileSync(join(dir, 'sub', 'b.txt'), 'beta');
    symlinkSync('a.txt', join(dir, 'link'));
    return dir;
  };

  it('depends on content, names, modes and link targets, not on where the tree is or its times', async () => {
    const [one, two] = [tree('one'), tree('two')];
    expect(await treeDigest(one)).toBe(await treeDigest(two));
    utimesSync(join(two, 'a.txt'), new Date(0), new Date(0));
    expect(await treeDigest(two)).toBe(await treeDigest(one));
    writeFileSync(join(two, 'sub', 'b.txt'), 'BETA');
    expect(await treeDigest(two)).not.toBe(await treeDigest(one));
    const three = tree('three');
    chmodSync(join(three, 'a.txt'), 0o755);
    expect(await treeDigest(three)).not.toBe(await treeDigest(one));
    const four = tree('four');
    rmSync(join(four, 'link'));
    symlinkSync('sub/b.txt', join(four, 'link'));
    expect(await treeDigest(four)).not.toBe(await treeDigest(one));
  });

  it('hashes a single file by its bytes; a missing path is LOCAL_PATH_NOT_FOUND', async () => {
    writeFileSync(join(work, 'f1'), 'same');
    writeFileSync(join(work, 'f2'), 'same');
    expect(await treeDigest(join(work, 'f1'))).toBe(await treeDigest(join(work, 'f2')));
    await expect(treeDigest(join(work, 'missing'))).rejects.toMatchObject({ code: 'LOCAL_PATH_NOT_FOUND' });
  });
});
