/**
 * The image cache and name resolution against a real HTTP server on 127.0.0.1 standing in for a
 * publisher: a catalog entry (via $KVMTEST_CATALOG), its checksum file, URLs with #sha256=.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { resolveImage } from '../../../src/image/resolve.js';
import { choosePrunable, listCached, pruneCached, removeCached } from '../../../src/image/store.js';

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

describe('list, rm, prune', () => {
  it('lists pulled images, removes by name, prunes by age and by size', async () => {
    await resolveImage('testos-1');
    await resolveImage('testos-2');
    expect((await listCached()).map((c) => c.name)).toEqual(['testos-1', 'testos-2']);
    expect(await removeCached('testos-1')).toBe(true);
    expect(await removeCached('testos-1')).toBe(false);
    expect((await listCached()).map((c) => c.name)).toEqual(['testos-2']);
    expect(await pruneCached({ olderThanMs: 60_000 })).toEqual([]);
    expect((await pruneCached({ maxBytes: 1000 })).map((c) => c.name)).toEqual(['testos-2']);
    expect(readdirSync(join(process.env.KVMTEST_CACHE!, 'blobs', 'sha256')).filter((f) => !f.endsWith('.lock'))).toEqual([]);
  });

  it('choosePrunable: unused too long first, then least recently used beyond the size cap', () => {
    const day = 86_400_000;
    const now = Date.parse('2026-11-23T00:00:00Z');
    const image = (name: string, daysAgo: number, size: number) => ({ name, usedAt: new Date(now - daysAgo * day).toISOString(), size });
    const images = [image('a', 40, 10), image('b', 1, 10), image('c', 10, 10), image('d', 2, 10)];
    expect(choosePrunable(images, { olderThanMs: 30 * day, now }).map((i) => i.name)).toEqual(['a']);
    expect(choosePrunable(images, { maxBytes: 20, now }).map((i) => i.name)).toEqual(['a', 'c']);
    expect(choosePrunable(images, { olderThanMs: 5 * day, maxBytes: 10, now }).map((i) => i.name)).toEqual(['a', 'c', 'd']);
  });
});
