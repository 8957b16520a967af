/**
 * Images by name through the real CLI: a catalog entry served by a local HTTP server standing in
 * for a publisher (this machine reaches none) is pulled with progress, verified, cached, reused and
 * booted, through the same code path as any cloud image; an image built offline boots by name.
 */

import { createReadStream, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { guestDirs, sha256File } from './helpers.js';

const cli = join(__dirname, '../../dist/cli/main.js');
const built = inject('debian12');
const work = mkdtempSync(join(tmpdir(), 'kvmtest-test-'));
let server: Server;
let imageRequests = 0;
let digest: string;
let env: Record<string, string>;

beforeAll(async () => {
  digest = await sha256File(built.disk);
  const size = statSync(built.disk).size;
  server = createServer((req, res) => {
    if (req.url === '/SHA256SUMS') return void res.end(`${digest}  mirror-debian-12.qcow2\n`);
    if (req.url !== '/mirror-debian-12.qcow2') return void res.writeHead(404).end();
    imageRequests++;
    res.writeHead(200, { 'content-length': size });
    // about 100 MiB/s, so a CI log shows a few progress lines
    const stream = createReadStream(built.disk, { highWaterMark: 1 << 20 });
    stream.on('data', (chunk) => {
      stream.pause();
      res.write(chunk, () => setTimeout(() => stream.resume(), 10));
    });
    stream.on('end', () => res.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  const catalog = join(work, 'catalog.json');
  writeFileSync(
    catalog,
    JSON.stringify([
      {
        name: 'mirror-debian-12',
        family: 'debian',
        title: 'Debian 12 from a local mirror',
        release: '12',
        format: 'qcow2',
        firmware: 'either',
        console: 'ttyS0',
        init: 'systemd',
        cloudInit: true,
        python3: true,
        agentPort: '/dev/virtio-ports/org.kvmtest.agent.0',
        arches: { x86_64: { url: `${base}/mirror-debian-12.qcow2`, checksum: { url: `${base}/SHA256SUMS`, format: 'sha256sums', algorithm: 'sha256' } } },
      },
    ]),
  );
  // a cache of its own, so the 450 MB download does not stay in the user's
  env = { CI: 'true', KVMTEST_CATALOG: catalog, KVMTEST_CACHE: join(work, 'cache') };
});

afterAll(async () => {
  await new Promise((r) => server?.close(r));
  rmSync(work, { recursive: true, force: true });
});

describe('kvmtest image', () => {
  let pulled: string;

  it('pull shows progress, verifies against the checksum file, and caches by content', async () => {
    const result = await execa('node', [cli, 'image', 'pull', 'mirror-debian-12'], { env, reject: false });
    expect(result.exitCode, result.stderr).toBe(0);
    pulled = result.stdout.trim();
    expect(pulled).toBe(join(work, 'cache', 'blobs', 'sha256', digest));
    expect(result.stderr).toMatch(/image mirror-debian-12 pulling \d+s: [█░]+ \d+ MiB of \d+ MiB \(\d+%\)/);
    expect(result.stderr).toMatch(/✔ image mirror-debian-12 ready: .* \(sha256 verified\) against a same-origin checksum only/);
    expect(imageRequests).toBe(1);
  });

  it('a second pull and list reuse the cache without downloading', async () => {
    const again = await execa('node', [cli, 'image', 'pull', 'mirror-debian-12'], { env });
    expect(again.stdout.trim()).toBe(pulled);
    expect(imageRequests).toBe(1);
    const list = await execa('node', [cli, 'image', 'list'], { env });
    expect(list.stdout).toMatch(/^mirror-debian-12 +Debian 12 from a local mirror +pulled \d+ MiB/m);
    expect(list.stdout).toMatch(/^ubuntu-24\.04 /m);
  });

  it('run boots the pulled image by name, and the cached image is unchanged', async () => {
    const result = await execa('node', [cli, 'run', '--image', 'mirror-debian-12', '--', 'cat', '/etc/os-release'], { env, reject: false });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/VERSION_CODENAME=bookworm/);
    expect(imageRequests).toBe(1);
    expect(await sha256File(pulled)).toBe(digest);
    expect(guestDirs()).toEqual([]);
  });

  it('rm forgets it', async () => {
    expect((await execa('node', [cli, 'image', 'rm', 'mirror-debian-12'], { env })).stdout).toBe('removed mirror-debian-12');
    const list = await execa('node', [cli, 'image', 'list'], { env });
    expect(list.stdout).toMatch(/^mirror-debian-12 .* - +systemd/m);
    const again = await execa('node', [cli, 'image', 'rm', 'mirror-debian-12'], { env, reject: false });
    expect(again.exitCode).toBe(2);
    expect(again.stderr).toMatch(/IMAGE_UNKNOWN/);
  });

  it('an image built offline boots by name: kvmtest run --image debian-13', async () => {
    const result = await execa('node', [cli, 'run', '--image', 'debian-13', '--snapshot', '--', 'cat', '/etc/os-release'], { env: { CI: 'true' }, reject: false });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/VERSION_CODENAME=trixie/);
  });
});
