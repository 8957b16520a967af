/**
 * The image cache and name resolution against a real HTTP server on 127.0.0.1 standing in for a
 * publisher: a catalog entry (via $KVMTEST_CATALOG), its checksum file, URLs with #sha256=.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KvmtestError } from '../../../src/errors.js';
import { loadCatalog } from '../../../src/image/catalog-file.js';
import { isUnreachable, parseImageUrl, resolveImage } from '../../../src/image/resolve.js';
import { catalogEntry } from '../fixtures/catalog-entry.js';
import { sha256 } from '../fixtures/digest.js';
import { useTestCatalog } from '../fixtures/test-catalog.js';

const testCatalog = useTestCatalog();
const { files, requests } = testCatalog;

describe('catalog images', () => {
  it('a name is pulled once: checksum file, image, verified, read-only in the content-addressed cache', async () => {
    const first = await resolveImage('testos-1');
    const expected = sha256(files.get('/testos-1.qcow2')!);
    expect(first).toMatchObject({ kind: 'catalog', path: join(process.env.KVMTEST_CACHE!, 'blobs', 'sha256', expected) });
    expect(requests).toEqual(['/SHA256SUMS', '/testos-1.qcow2']);
    expect(readFileSync(first.path).equals(files.get('/testos-1.qcow2')!)).toBe(true);
    expect(statSync(first.path).mode & 0o222).toBe(0);

    requests.length = 0;
    const again = await resolveImage('testos-1');
    expect(again.path).toBe(first.path);
    expect(requests).toEqual([]); // a cache hit asks nothing of the network
  });

  it('two concurrent pulls of one image download it once, and both get the whole file', async () => {
    const [a, b] = await Promise.all([resolveImage('testos-2'), resolveImage('testos-2')]);
    expect(a.path).toBe(b.path);
    expect(requests.filter((r) => r === '/testos-2.qcow2')).toHaveLength(1);
    expect(sha256(readFileSync(a.path))).toBe(sha256(files.get('/testos-2.qcow2')!));
    expect(existsSync(join(process.env.KVMTEST_CACHE!, 'downloads')) ? readdirSync(join(process.env.KVMTEST_CACHE!, 'downloads')) : []).toEqual([]);
  });

  it('an image missing from the checksum file, or from the server, fails clearly', async () => {
    const catalog = JSON.parse(readFileSync(process.env.KVMTEST_CATALOG!, 'utf8'));
    catalog.push({ ...catalogEntry(testCatalog.base, 'testos-9'), name: 'testos-9' });
    const file = join(testCatalog.work, 'catalog-9.json');
    writeFileSync(file, JSON.stringify(catalog));
    process.env.KVMTEST_CATALOG = file;
    try {
      await expect(resolveImage('testos-9', { retries: 0 })).rejects.toMatchObject({ code: 'DOWNLOAD_FAILED', message: expect.stringMatching(/lists no sha256 for testos-9\.qcow2/) });
    } finally {
      process.env.KVMTEST_CATALOG = join(testCatalog.work, 'catalog.json');
    }
  });

  it('a name kvmtest can also build is downloaded when no build is cached; $KVMTEST_CATALOG adds to the catalog', async () => {
    // debian-12 is replaced by this test catalog's entry, and nothing is built in this empty cache
    await expect(resolveImage('debian-12')).resolves.toMatchObject({ kind: 'catalog' });
    expect((await loadCatalog()).map((e) => e.name)).toContain('ubuntu-24.04');
  });
});

describe('URLs and paths', () => {
  it('an https URL needs a digest to verify against', () => {
    expect(parseImageUrl(`https://x/img.qcow2#sha256=${'A'.repeat(64)}`)).toEqual({ url: 'https://x/img.qcow2', digest: { algorithm: 'sha256', hex: 'a'.repeat(64) } });
    expect(parseImageUrl(`https://x/img.qcow2#sha512=${'b'.repeat(128)}`).digest.algorithm).toBe('sha512');
    for (const bad of ['https://x/img.qcow2', 'https://x/img.qcow2#sha256=abc', `https://x/img.qcow2#md5=${'a'.repeat(32)}`]) {
      expect(() => parseImageUrl(bad), bad).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    }
  });

  it('a URL is downloaded once and verified; a wrong digest leaves nothing behind', async () => {
    const data = files.get('/testos-3.qcow2')!;
    const url = `${testCatalog.base}/testos-3.qcow2#sha256=${sha256(data)}`;
    const pulled = await resolveImage(url);
    expect(pulled.kind).toBe('url');
    expect(readFileSync(pulled.path).equals(data)).toBe(true);
    await resolveImage(url);
    expect(requests).toEqual(['/testos-3.qcow2']);

    const wrong = `${testCatalog.base}/testos-3.qcow2#sha256=${'0'.repeat(64)}`;
    const error = await resolveImage(wrong, { retries: 0 }).catch((e) => e);
    expect(error).toMatchObject({ code: 'CHECKSUM_MISMATCH' });
    expect(error.message).toContain('0'.repeat(64));
    expect(error.message).toContain(sha256(data));
    expect(readdirSync(join(process.env.KVMTEST_CACHE!, 'blobs', 'sha256'))).not.toContain('0'.repeat(64));
  });

  it('only an unreachable publisher makes a buildable name fall back to a build', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' });
    expect(isUnreachable(new KvmtestError('DOWNLOAD_FAILED', 'failed after 5 attempts', { cause: new Error('fetch failed', { cause: refused }) }))).toBe(true);
    expect(isUnreachable(new KvmtestError('DOWNLOAD_TIMEOUT', 'no data'))).toBe(true);
    expect(isUnreachable(new KvmtestError('DOWNLOAD_FAILED', 'lists no sha512 for x'))).toBe(false);
    expect(isUnreachable(new KvmtestError('DOWNLOAD_NOT_FOUND', '404'))).toBe(false);
    expect(isUnreachable(new KvmtestError('CHECKSUM_MISMATCH', 'differs'))).toBe(false);
  });

  it("a name means that architecture's image: cached apart from the host's, refused where the catalog and the recipes have none", async () => {
    const arm = await resolveImage('testos-3', { arch: 'aarch64' });
    expect(arm).toMatchObject({ kind: 'catalog', cached: { name: 'testos-3.aarch64' } });
    expect(requests).toEqual(['/SHA256SUMS', '/testos-3.qcow2']);
    requests.length = 0;
    expect((await resolveImage('testos-3', { arch: 'aarch64' })).path).toBe(arm.path);
    expect(requests).toEqual([]);
    await expect(resolveImage('testos-1', { arch: 'aarch64' })).rejects.toMatchObject({ code: 'IMAGE_UNKNOWN', message: expect.stringMatching(/testos-1 has no aarch64 image.*x86_64/) });
    // a release kvmtest builds, for an architecture Debian's archive lacks for it: nothing asked of the network
    await expect(resolveImage('debian-12', { arch: 'riscv64' })).rejects.toMatchObject({ code: 'IMAGE_UNKNOWN', message: expect.stringMatching(/builds debian-12 for x86_64, aarch64/) });
    expect(requests).toEqual([]);
  });

  it('paths stay paths; an unknown name says what names there are', async () => {
    await expect(resolveImage('./disk.qcow2')).resolves.toEqual({ kind: 'local', path: join(process.cwd(), 'disk.qcow2') });
    await expect(resolveImage('debain-12')).rejects.toMatchObject({ code: 'IMAGE_UNKNOWN', message: expect.stringMatching(/debian-12, debian-13/) });
    expect(requests).toEqual([]);
  });
});
