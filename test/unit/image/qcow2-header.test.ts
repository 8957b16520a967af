/**
 * A publisher (a real HTTP server on 127.0.0.1) serving images whose qcow2 header names a host
 * file, as a backing file or as an external data file: the guest would read that file as its disk.
 * Whatever way they arrive (catalog name, URL with a digest, a blob already in the cache), they are
 * refused before anything boots and leave nothing in the cache. A path the user gives keeps its chain.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { qcow2References, sniffFormat } from '../../../src/image/qcow2-header.js';
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

describe('qcow2 headers, read before qemu-img opens anything', () => {
  it('names the backing file and the external data file; not qcow2 → undefined', () => {
    expect(qcow2References(files.get('/evil-backing.qcow2')!)).toEqual({ backingFile: '/etc/passwd' });
    expect(qcow2References(files.get('/evil-data.qcow2')!)).toEqual({ dataFile: secret });
    expect(qcow2References(files.get('/clean.qcow2')!)).toEqual({});
    expect(qcow2References(Buffer.alloc(512))).toBeUndefined();
  });

  it('a format nobody declared: qcow2 by its magic, other formats qemu-img would guess by theirs, else raw', () => {
    expect(sniffFormat(files.get('/clean.qcow2')!)).toBe('qcow2');
    expect(sniffFormat(Buffer.from('KDMV\x01\x00\x00\x00', 'latin1'))).toBe('vmdk');
    expect(sniffFormat(Buffer.from('# Disk DescriptorFile\nRW 1 FLAT "/etc/shadow" 0\n'))).toBe('vmdk');
    expect(sniffFormat(Buffer.alloc(4096))).toBe('raw');
  });
});
