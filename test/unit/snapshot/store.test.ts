import { mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cachePath } from '../../../src/image/cache.js';
import { inspectSnapshot, makeSnapshotDir, readSnapshot, snapshotPaths, writeMeta } from '../../../src/snapshot/store.js';
import { refused, useCacheHome } from '../fixtures/cache-home.js';

const home = useCacheHome({ victim: true });

describe('snapshots', () => {
  it("their directory is 0700, the state, the RAM file (the guest's memory), disk and seed 0600; a link at any of them is refused", async () => {
    const paths = snapshotPaths('k1');
    await makeSnapshotDir(paths);
    writeFileSync(paths.state, 'DEV', { flag: 'a' });
    writeFileSync(paths.ram, 'RAM!', { flag: 'a' });
    for (const file of [paths.disk, paths.seed]) writeFileSync(file, 'x', { mode: 0o644 });
    await writeMeta(paths, { key: 'k1', createdAt: new Date().toISOString(), baseImage: '/b', stateBytes: 3, ramBytes: 4, saveMs: 1 });
    expect(statSync(paths.dir).mode & 0o777).toBe(0o700);
    for (const file of [paths.state, paths.ram, paths.disk, paths.seed, join(paths.dir, 'meta.json')]) expect(statSync(file).mode & 0o777, file).toBe(0o600);
    await expect(readSnapshot('k1')).resolves.toMatchObject({ key: 'k1' });

    rmSync(paths.state);
    symlinkSync(home.victim, paths.state);
    await refused(readSnapshot('k1'));
    rmSync(paths.state);
    writeFileSync(paths.state, 'DEV');
    rmSync(paths.ram);
    symlinkSync(home.victim, paths.ram);
    await refused(readSnapshot('k1'));
    expect(readFileSync(home.victim, 'utf8')).toBe('host file\n');
  });

  it("is incomplete (not used) when its RAM file is missing, or not the size meta.json records, or not the guest's memory size", async () => {
    const paths = snapshotPaths('k4');
    await makeSnapshotDir(paths);
    writeFileSync(paths.state, 'DEV');
    writeFileSync(paths.ram, Buffer.alloc(4096));
    for (const file of [paths.disk, paths.seed]) writeFileSync(file, 'x');
    await writeMeta(paths, { key: 'k4', createdAt: new Date().toISOString(), baseImage: '/b', stateBytes: 3, ramBytes: 4096, saveMs: 1 });
    await expect(readSnapshot('k4', 4096)).resolves.toMatchObject({ key: 'k4', ram: paths.ram });
    await expect(readSnapshot('k4', 8192)).resolves.toBeUndefined();
    writeFileSync(paths.ram, Buffer.alloc(100));
    await expect(readSnapshot('k4')).resolves.toBeUndefined();
    rmSync(paths.ram);
    await expect(readSnapshot('k4')).resolves.toBeUndefined();
  });

  it('a whole-RAM snapshot of an older kvmtest (no RAM file, no ramBytes) is not used', async () => {
    const paths = snapshotPaths('k5');
    await cachePath('snapshots');
    mkdirSync(paths.dir, { mode: 0o700 });
    for (const file of [paths.state, paths.disk, paths.seed]) writeFileSync(file, 'RAM');
    writeFileSync(join(paths.dir, 'meta.json'), JSON.stringify({ key: 'k5', stateBytes: 3 }));
    await expect(readSnapshot('k5')).resolves.toBeUndefined();
  });

  it('one an older kvmtest left readable (0755, 0644) is made private when next used', async () => {
    const paths = snapshotPaths('k3');
    await cachePath('snapshots');
    mkdirSync(paths.dir, { mode: 0o755 });
    for (const file of [paths.state, paths.ram, paths.disk, paths.seed]) writeFileSync(file, 'RAM', { mode: 0o644 });
    writeFileSync(join(paths.dir, 'meta.json'), JSON.stringify({ key: 'k3', stateBytes: 3, ramBytes: 3 }), { mode: 0o644 });
    await expect(readSnapshot('k3')).resolves.toMatchObject({ key: 'k3' });
    expect(statSync(paths.dir).mode & 0o777).toBe(0o700);
    for (const file of [paths.state, paths.ram, paths.disk, paths.seed, join(paths.dir, 'meta.json')]) expect(statSync(file).mode & 0o777, file).toBe(0o600);
  });

  it('the state file is made new: a link planted in its place fails the snapshot instead of receiving the RAM', async () => {
    const paths = snapshotPaths('k2');
    await cachePath('snapshots');
    mkdirSync(paths.dir, { mode: 0o700 });
    symlinkSync(home.victim, paths.state);
    await expect(makeSnapshotDir(paths)).rejects.toThrow();
    expect(readFileSync(home.victim, 'utf8')).toBe('host file\n');
  });

  it('the RAM file is made new by the host: a link planted in its place fails the snapshot instead of QEMU mapping the target shared', async () => {
    const paths = snapshotPaths('k6');
    await cachePath('snapshots');
    mkdirSync(paths.dir, { mode: 0o700 });
    symlinkSync(home.victim, paths.ram);
    await expect(makeSnapshotDir(paths)).rejects.toThrow();
    expect(readFileSync(home.victim, 'utf8')).toBe('host file\n');
  });

  it('inspecting (what kvmtest cache list does) changes nothing and says why one is not complete; reading makes it private', async () => {
    const paths = snapshotPaths('k7');
    await cachePath('snapshots');
    mkdirSync(paths.dir, { mode: 0o755 });
    for (const file of [paths.state, paths.ram, paths.disk, paths.seed]) writeFileSync(file, 'RAM', { mode: 0o644 });
    writeFileSync(join(paths.dir, 'meta.json'), JSON.stringify({ key: 'k7', stateBytes: 3, ramBytes: 3 }), { mode: 0o644 });
    await expect(inspectSnapshot('k7')).resolves.toMatchObject({ snapshot: { key: 'k7' } });
    expect(statSync(paths.dir).mode & 0o777).toBe(0o755);
    expect(statSync(paths.ram).mode & 0o777).toBe(0o644);
    await expect(inspectSnapshot('k7', 4096)).resolves.toEqual({ reason: 'ram.bin is 3 bytes, the guest has 4096' });
    writeFileSync(join(paths.dir, 'meta.json'), '{');
    await expect(inspectSnapshot('k7')).resolves.toEqual({ reason: 'unreadable meta.json' });
    rmSync(paths.seed);
    await expect(inspectSnapshot('k7')).resolves.toEqual({ reason: 'no seed.iso' });
    await expect(inspectSnapshot('nothing')).resolves.toEqual({ reason: 'missing' });
  });
});
