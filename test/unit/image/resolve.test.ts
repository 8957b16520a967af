/**
 * The image cache and name resolution against a real HTTP server on 127.0.0.1 standing in for a
 * publisher: a catalog entry (via $KVMTEST_CATALOG), its checksum file, URLs with #sha256=.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { KvmtestError } from '../../../src/errors.js';
import { loadCatalog } from '../../../src/image/catalog-file.js';
import { isUnreachable, parseImageUrl, resolveImage } from '../../../src/image/resolve.js';

const files = new Map<string, Buffer>();
const requests: string[] = [];
let server: Server;
let base: string;
let work: string;
const saved = { cache: process.env.KVMTEST_CACHE, catalog: process.env.KVMTEST_CATALOG };
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

function entry(name: string) {
  return {
    name,
    family: 'debian',
    title: `Test OS ${name}`,
    release: '1',
    format: 'qcow2',
    firmware: 'either',
    console: 'ttyS0',
    init: 'systemd',
    cloudInit: true,
    python3: true,
    agentPort: '/dev/virtio-ports/org.kvmtest.agent.0',
    arches: { x86_64: { url: `${base}/${name}.qcow2`, checksum: { url: `${base}/SHA256SUMS`, format: 'sha256sums', algorithm: 'sha256' } } },
  };
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'kvmtest-unit-'));
  for (const name of ['testos-1', 'testos-2', 'testos-3', 'debian-12']) files.set(`/${name}.qcow2`, randomBytes(1 << 20));
  files.set('/SHA256SUMS', Buffer.from([...files].map(([path, data]) => `${sha256(data)}  ${path.slice(1)}\n`).join('')));
  server = createServer((req, res) => {
    requests.push(req.url!);
    const body = files.get(req.url!);
    if (!body) return void res.writeHead(404).end();
    // slow enough that concurrent pulls overlap
    res.writeHead(200, { 'content-length': body.length, etag: `"${sha256(body).slice(0, 8)}"` });
    setTimeout(() => res.end(body), 100);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  writeFileSync(join(work, 'catalog.json'), JSON.stringify(['testos-1', 'testos-2', 'testos-3', 'debian-12'].map(entry)));
  process.env.KVMTEST_CATALOG = join(work, 'catalog.json');
});

beforeEach(() => {
  process.env.KVMTEST_CACHE = mkdtempSync(join(work, 'cache-'));
  requests.length = 0;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(work, { recursive: true, force: true });
  for (const [key, env] of [
    ['KVMTEST_CACHE', saved.cache],
    ['KVMTEST_CATALOG', saved.catalog],
  ] as const) {
    if (env === undefined) delete process.env[key];
    else process.env[key] = env;
  }
});

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
    catalog.push({ ...entry('testos-9'), name: 'testos-9' });
    const file = join(work, 'catalog-9.json');
    writeFileSync(file, JSON.stringify(catalog));
    process.env.KVMTEST_CATALOG = file;
    try {
      await expect(resolveImage('testos-9', { retries: 0 })).rejects.toMatchObject({ code: 'DOWNLOAD_FAILED', message: expect.stringMatching(/lists no sha256 for testos-9\.qcow2/) });
    } finally {
      process.env.KVMTEST_CATALOG = join(work, 'catalog.json');
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
    const url = `${base}/testos-3.qcow2#sha256=${sha256(data)}`;
    const pulled = await resolveImage(url);
    expect(pulled.kind).toBe('url');
    expect(readFileSync(pulled.path).equals(data)).toBe(true);
    await resolveImage(url);
    expect(requests).toEqual(['/testos-3.qcow2']);

    const wrong = `${base}/testos-3.qcow2#sha256=${'0'.repeat(64)}`;
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

  it('paths stay paths; an unknown name says what names there are', async () => {
    await expect(resolveImage('./disk.qcow2')).resolves.toEqual({ kind: 'local', path: join(process.cwd(), 'disk.qcow2') });
    await expect(resolveImage('debain-12')).rejects.toMatchObject({ code: 'IMAGE_UNKNOWN', message: expect.stringMatching(/debian-12, debian-13/) });
    expect(requests).toEqual([]);
  });
});
