/**
 * The cache holds what guests boot from (images, snapshots with the guest's RAM): a cache another
 * user can write to, or a symlink planted in it, is refused with CACHE_UNSAFE; what kvmtest makes
 * there is private (directories 0700, snapshot files 0600).
 */
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cachePath, unsafeDirReason } from '../../../src/image/cache.js';
import { blobPath, findCached, listCached, pullBlob } from '../../../src/image/store.js';
import { readSnapshot, snapshotPaths } from '../../../src/snapshot/store.js';
import { refused, useCacheHome } from '../fixtures/cache-home.js';
import { sha256 } from '../fixtures/digest.js';

const body = Buffer.from('a disk image\n'.repeat(1000));
const digest = { algorithm: 'sha256' as const, hex: sha256(body) };
let server: Server;
let url: string;
const isRoot = process.getuid?.() === 0;
const home = useCacheHome({ victim: true });

beforeAll(async () => {
  server = createServer((_req, res) => void res.writeHead(200, { 'content-length': body.length }).end(body));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/disk.qcow2`;
});

afterAll(() => {
  server.close();
});

describe('the cache directory', () => {
  it('is made 0700, and so is every directory kvmtest makes in it', async () => {
    await pullBlob('u', url, digest);
    for (const dir of ['', 'blobs', 'blobs/sha256', 'downloads', 'refs']) expect(statSync(join(home.cache, dir)).mode & 0o777, dir).toBe(0o700);
  });

  it('writable by others (0777) is refused, saying how to fix it; nothing is downloaded into it', async () => {
    mkdirSync(home.cache, { mode: 0o777 });
    chmodSync(home.cache, 0o777);
    await refused(pullBlob('u', url, digest));
    await expect(findCached('u')).rejects.toThrow(/writable by its group and others \(mode 0777\).*chmod go-w/);
    expect(existsSync(join(home.cache, 'blobs'))).toBe(false);
  });

  it('a group-writable directory inside it is refused too', async () => {
    await pullBlob('u', url, digest);
    chmodSync(join(home.cache, 'refs'), 0o770);
    await refused(pullBlob('v', url, digest));
  });

  it.skipIf(!isRoot)('owned by another user is refused, saying how to fix it', async () => {
    mkdirSync(home.cache, { mode: 0o700 });
    chownSync(home.cache, 4242, 4242);
    await expect(listCached()).rejects.toMatchObject({ code: 'CACHE_UNSAFE', message: expect.stringMatching(/owned by uid 4242, not by you \(uid 0\).*chown/) });
  });

  it('judges a directory: link, not a directory, owner (root is fine), group/other write bits', () => {
    const dir = (mode: number, uid: number, kind: 'dir' | 'link' | 'file' = 'dir') => ({ mode, uid, isDirectory: () => kind === 'dir', isSymbolicLink: () => kind === 'link' });
    expect(unsafeDirReason(dir(0o40700, 1000), 1000)).toBeUndefined();
    expect(unsafeDirReason(dir(0o40755, 0), 1000)).toBeUndefined();
    expect(unsafeDirReason(dir(0o40775, 1000), 1000)).toMatch(/writable by its group \(mode 0775\)/);
    expect(unsafeDirReason(dir(0o40757, 1000), 1000)).toMatch(/writable by others/);
    expect(unsafeDirReason(dir(0o40700, 1001), 1000)).toMatch(/owned by uid 1001/);
    expect(unsafeDirReason(dir(0o120777, 1000, 'link'), 1000)).toMatch(/symlink/);
    expect(unsafeDirReason(dir(0o100600, 1000, 'file'), 1000)).toMatch(/not a directory/);
  });
});

describe('symlinks planted in the cache are refused, never followed', () => {
  it('at a blob: the image is not booted from the link target', async () => {
    await pullBlob('u', url, digest);
    const blob = blobPath(digest, home.cache);
    rmSync(blob);
    symlinkSync(home.victim, blob);
    await refused(findCached('u'));
    await refused(pullBlob('u', url, digest));
  });

  it('at a partial download: the download does not write through it', async () => {
    await cachePath('downloads');
    symlinkSync(home.victim, join(home.cache, 'downloads', `${digest.hex}.partial`));
    await refused(pullBlob('u', url, digest));
    expect(readFileSync(home.victim, 'utf8')).toBe('host file\n');
  });

  it('at a ref: neither read nor replaced', async () => {
    await cachePath('refs');
    symlinkSync(home.victim, join(home.cache, 'refs', 'u.json'));
    await refused(pullBlob('u', url, digest));
    expect(readFileSync(home.victim, 'utf8')).toBe('host file\n');
    expect(lstatSync(join(home.cache, 'refs', 'u.json')).isSymbolicLink()).toBe(true);
  });

  it("at a directory kvmtest uses (snapshots → elsewhere), or at one snapshot's directory", async () => {
    mkdirSync(home.cache, { mode: 0o700 });
    symlinkSync(home.work, join(home.cache, 'snapshots'));
    await refused(readSnapshot('k'));
    rmSync(join(home.cache, 'snapshots'));
    await cachePath('snapshots');
    symlinkSync(home.work, snapshotPaths('k').dir);
    await refused(readSnapshot('k'));
  });
});
