/**
 * A publisher (a real HTTP server on 127.0.0.1) serving images whose qcow2 header names a host
 * file, as a backing file or as an external data file: the guest would read that file as its disk.
 * Whatever way they arrive (catalog name, URL with a digest, a blob already in the cache), they are
 * refused before anything boots and leave nothing in the cache. A path the user gives keeps its chain.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { prepare } from '../../../src/guest/prepare.js';
import { inspectBase } from '../../../src/image/base.js';
import { baseChain } from '../../../src/image/disk.js';
import { resolveImage } from '../../../src/image/resolve.js';
import { listCached } from '../../../src/image/store.js';
import { buildQemuArgs } from '../../../src/qemu/argv.js';
import { startPublisher } from '../fixtures/publisher.js';

const files = new Map<string, Buffer>();
let server: Server;
let base: string;
let work: string;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const qemuImg = (...args: string[]) => execFileSync('qemu-img', args, { stdio: 'pipe' });
/** A secret on the host that the hostile images point at. */
let secret: string;

function entry(name: string, format: 'qcow2' | 'raw' = 'qcow2') {
  return {
    name,
    family: 'debian',
    title: `Hostile ${name}`,
    release: '1',
    format,
    firmware: 'either',
    console: 'ttyS0',
    init: 'systemd',
    cloudInit: true,
    python3: true,
    agentPort: '/dev/virtio-ports/org.kvmtest.agent.0',
    arches: { x86_64: { url: `${base}/${name}.qcow2`, checksum: { url: `${base}/SHA256SUMS`, format: 'sha256sums', algorithm: 'sha256' } } },
  };
}

/** Nothing of a refused image is left: no ref, no blob, no partial download. */
function cacheHoldsNothing(): void {
  const cache = process.env.KVMTEST_CACHE!;
  const blobs = join(cache, 'blobs', 'sha256');
  expect(existsSync(blobs) ? readdirSync(blobs).filter((f) => !f.endsWith('.lock')) : []).toEqual([]);
  const downloads = join(cache, 'downloads');
  expect(existsSync(downloads) ? readdirSync(downloads) : []).toEqual([]);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'kvmtest-hostile-'));
  secret = join(work, 'host-secret.bin');
  writeFileSync(secret, Buffer.alloc(1 << 20, 'host secret '));
  const make = (name: string, ...args: string[]) => {
    qemuImg('create', '-q', '-f', 'qcow2', ...args, join(work, name), '1M');
    files.set(`/${name}`, readFileSync(join(work, name)));
  };
  make('evil-backing.qcow2', '-b', '/etc/passwd', '-F', 'raw', '-u');
  make('evil-data.qcow2', '-o', `data_file=${secret}`);
  make('raw-declared.qcow2', '-b', secret, '-F', 'raw');
  make('clean.qcow2');
  files.set('/SHA256SUMS', Buffer.from([...files].map(([path, data]) => `${sha256(data)}  ${path.slice(1)}\n`).join('')));
  ({ server, base } = await startPublisher(files));
  const catalog = [entry('evil-backing'), entry('evil-data'), entry('raw-declared', 'raw'), entry('clean')];
  writeFileSync(join(work, 'catalog.json'), JSON.stringify(catalog));
  vi.stubEnv('KVMTEST_CATALOG', join(work, 'catalog.json'));
});

beforeEach(() => {
  vi.stubEnv('KVMTEST_CACHE', mkdtempSync(join(work, 'cache-')));
});

afterAll(async () => {
  vi.unstubAllEnvs();
  server.close();
  rmSync(work, { recursive: true, force: true });
});

describe('downloaded images must be self-contained', () => {
  it('a catalog image naming a backing file on the host is refused before boot, and leaves the cache', async () => {
    const error = await prepare({ image: 'evil-backing' }).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'IMAGE_INVALID',
      message: expect.stringMatching(/downloaded image evil-backing .*names a backing file "\/etc\/passwd": refused, a base image must be self-contained/),
    });
    expect(await listCached()).toEqual([]);
    cacheHoldsNothing();
  });

  it('a catalog image naming an external data file on the host is refused', async () => {
    const error = await prepare({ image: 'evil-data' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'IMAGE_INVALID', message: expect.stringContaining(`names an external data file ${JSON.stringify(secret)}: refused`) });
    cacheHoldsNothing();
  });

  it('a URL with a digest is refused the same way', async () => {
    const url = `${base}/evil-backing.qcow2#sha256=${sha256(files.get('/evil-backing.qcow2')!)}`;
    await expect(prepare({ image: url })).rejects.toMatchObject({ code: 'IMAGE_INVALID', message: expect.stringContaining('names a backing file') });
    cacheHoldsNothing();
  });

  it('a hostile blob already in the cache (pulled by an older kvmtest) is refused when used, and removed', async () => {
    const pulled = await resolveImage('evil-data'); // the download alone does not inspect
    expect(existsSync(pulled.path)).toBe(true);
    await expect(prepare({ image: 'evil-data' })).rejects.toMatchObject({ code: 'IMAGE_INVALID' });
    expect(existsSync(pulled.path)).toBe(false);
    expect(await listCached()).toEqual([]);
  });

  it('a raw-declared file is opened as raw whatever its bytes say: the qcow2 header inside is only data', async () => {
    const prep = await prepare({ image: 'raw-declared' });
    expect(prep.base).toMatchObject({ format: 'raw' });
    expect(prep.base.chain).toBeUndefined();
    const [disk] = buildQemuArgs({
      name: 'n',
      accel: 'tcg',
      cpus: 1,
      memoryMiB: 256,
      disk: '/o.qcow2',
      backing: baseChain(prep.base),
      seed: '/s',
      boot: { kind: 'firmware', firmware: 'bios' },
      qmpSocket: '/q',
      agentSocket: '/a',
      network: false,
    }).filter((_, i, all) => all[i - 1] === '-blockdev');
    expect(JSON.parse(disk!).backing).toEqual({ driver: 'raw', 'read-only': true, file: { driver: 'file', filename: prep.base.path, 'read-only': true } });
  });

  it('a clean image passes, and QEMU is told its chain ends there (backing: null)', async () => {
    const prep = await prepare({ image: 'clean' });
    expect(prep.base).toMatchObject({ format: 'qcow2', virtualSize: 1 << 20 });
    expect(baseChain(prep.base)).toEqual([{ path: prep.base.path, format: 'qcow2' }]);
  });

  it('a path the user gives may have a backing chain: they asked for it, and QEMU is told the whole chain', async () => {
    const mine = join(work, 'mine.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', secret, '-F', 'raw', mine);
    const prep = await prepare({ image: mine });
    expect(prep.base.chain).toEqual([{ path: secret, format: 'raw' }]);
    expect(await inspectBase('qemu-img', { kind: 'local', path: mine })).toMatchObject({ backingFile: secret });
  });
});
