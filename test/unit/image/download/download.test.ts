import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { KvmtestError } from '../../../../src/errors.js';
import { type DownloadProgress, download, fetchText, hashFile } from '../../../../src/image/download/index.js';
import { sha256, sha512 } from '../../fixtures/digest.js';
import { failure, SIZE, sizeOf, useDownloadScene } from '../../fixtures/download-scene.js';

const FAST = { backoffMs: 5 };
const exists = async (path: string) => (await sizeOf(path)) >= 0;
const scene = useDownloadScene();
const { files } = scene;
const half = Math.floor(SIZE / 2);

describe('download', () => {
  it('streams the whole file, verifies sha256 and renames it into place', async () => {
    const progress: DownloadProgress[] = [];
    const result = await download({
      url: files.url(),
      dest: scene.dest,
      dispatcher: scene.dispatcher,
      expected: { algorithm: 'sha256', hex: sha256(files.data) },
      onProgress: (p) => progress.push(p),
    });
    expect(result).toEqual({
      path: scene.dest,
      bytes: SIZE,
      resumed: false,
      attempts: 1,
      digest: { algorithm: 'sha256', hex: sha256(files.data) },
    });
    expect((await readFile(scene.dest)).equals(files.data)).toBe(true);
    expect(await exists(scene.partial)).toBe(false);
    expect(await exists(`${scene.partial}.json`)).toBe(false);
    expect(progress.at(-1)).toEqual({ received: SIZE, total: SIZE, resumedFrom: 0, attempt: 1 });
    expect(progress.length).toBeLessThan(10); // throttled: a local 3 MiB download takes well under a second
  });

  it('verifies sha512 (upper-case hex accepted) and returns the digest in that algorithm', async () => {
    const hex = sha512(files.data);
    const result = await download({ url: files.url(), dest: scene.dest, dispatcher: scene.dispatcher, expected: { algorithm: 'sha512', hex: hex.toUpperCase() } });
    expect(result.digest).toEqual({ algorithm: 'sha512', hex });
    expect(await hashFile(scene.dest, 'sha512')).toBe(hex);
  });

  it('resumes with Range and If-Range after the server cuts the connection mid-file', async () => {
    files.plan = ['cut'];
    const result = await download({ url: files.url(), dest: scene.dest, dispatcher: scene.dispatcher, ...FAST, expected: { algorithm: 'sha256', hex: sha256(files.data) } });
    expect(files.requests).toHaveLength(2);
    expect(files.requests[0]?.headers.range).toBeUndefined();
    expect(files.requests[1]?.headers).toMatchObject({ range: `bytes=${half}-`, 'if-range': files.etag });
    expect(result).toMatchObject({ attempts: 2, resumed: true, bytes: SIZE });
    expect((await readFile(scene.dest)).equals(files.data)).toBe(true);
  });

  it('resumes from what was stored when the cut loses bytes the client had buffered', async () => {
    files.plan = ['cut-now'];
    const result = await download({ url: files.url(), dest: scene.dest, dispatcher: scene.dispatcher, ...FAST, expected: { algorithm: 'sha256', hex: sha256(files.data) } });
    const from = Number(/^bytes=(\d+)-$/.exec(String(files.requests[1]?.headers.range))?.[1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(half);
    expect(result).toMatchObject({ attempts: 2, resumed: true, bytes: SIZE });
    expect((await readFile(scene.dest)).equals(files.data)).toBe(true);
  });

  it('keeps the partial file when aborted and resumes it in a later call', async () => {
    files.plan = ['half-then-stall'];
    const controller = new AbortController();
    const first = failure(download({ url: files.url(), dest: scene.dest, dispatcher: scene.dispatcher, signal: controller.signal }));
    await vi.waitFor(async () => expect(await sizeOf(scene.partial)).toBe(half), { timeout: 5000, interval: 10 });
    const reason = new Error('user cancelled');
    const abortedAt = performance.now();
    controller.abort(reason);
    const error = await first;
    expect(performance.now() - abortedAt).toBeLessThan(1000);
    expect(error).toBeInstanceOf(KvmtestError);
    expect(error).toMatchObject({ code: 'ABORTED', cause: reason });

    // in between: the partial file and its validator stay for the next call
    expect(await sizeOf(scene.partial)).toBe(half);
    expect(JSON.parse(await readFile(`${scene.partial}.json`, 'utf8'))).toMatchObject({ etag: files.etag, total: SIZE });
    expect(await exists(scene.dest)).toBe(false);

    const result = await download({ url: files.url(), dest: scene.dest, dispatcher: scene.dispatcher, expected: { algorithm: 'sha256', hex: sha256(files.data) } });
    expect(files.requests[1]?.headers).toMatchObject({ range: `bytes=${half}-`, 'if-range': files.etag });
    expect(result).toMatchObject({ attempts: 1, resumed: true, bytes: SIZE });
    expect((await readFile(scene.dest)).equals(files.data)).toBe(true);
  });

  it('starts over when the server ignores Range and sends the whole file', async () => {
    files.plan = ['cut', 'ignore-range'];
    const result = await download({ url: files.url(), dest: scene.dest, dispatcher: scene.dispatcher, ...FAST, expected: { algorithm: 'sha256', hex: sha256(files.data) } });
    expect(files.requests[1]?.headers.range).toBe(`bytes=${half}-`);
    expect(result).toMatchObject({ attempts: 2, resumed: false, bytes: SIZE });
    expect((await readFile(scene.dest)).equals(files.data)).toBe(true);
  });

  it('gets the new file when it changed between calls (If-Range with the old ETag → 200)', async () => {
    const before = files.data;
    files.plan = ['cut'];
    const error = await failure(download({ url: files.url(), dest: scene.dest, dispatcher: scene.dispatcher, retries: 0 }));
    expect(error).toMatchObject({ code: 'DOWNLOAD_FAILED' });
    expect(error.message).toContain(files.url());
    expect(error.message).toContain('1 attempt');
    expect(await sizeOf(scene.partial)).toBe(half);

    const oldEtag = files.etag;
    files.setData(randomBytes(SIZE));
    try {
      const result = await download({ url: files.url(), dest: scene.dest, dispatcher: scene.dispatcher, expected: { algorithm: 'sha256', hex: sha256(files.data) } });
      expect(files.requests[1]?.headers).toMatchObject({ range: `bytes=${half}-`, 'if-range': oldEtag });
      expect(result).toMatchObject({ resumed: false, bytes: SIZE });
      expect((await readFile(scene.dest)).equals(files.data)).toBe(true);
    } finally {
      files.setData(before);
    }
  });

  it('accepts a partial file that is already complete (416 for a range at its end)', async () => {
    files.plan = ['cut'];
    await failure(download({ url: files.url(), dest: scene.dest, dispatcher: scene.dispatcher, retries: 0 }));
    await writeFile(scene.partial, files.data); // as if the last bytes had arrived before the process died

    const result = await download({ url: files.url(), dest: scene.dest, dispatcher: scene.dispatcher, expected: { algorithm: 'sha256', hex: sha256(files.data) } });
    expect(files.requests[1]?.headers.range).toBe(`bytes=${SIZE}-`);
    expect(result).toMatchObject({ resumed: true, bytes: SIZE, attempts: 1 });
    expect((await readFile(scene.dest)).equals(files.data)).toBe(true);
  });

  it('deletes the download on a checksum mismatch and names both digests and the URL', async () => {
    const wrong = 'ab'.repeat(32);
    const error = await failure(download({ url: files.url(), dest: scene.dest, dispatcher: scene.dispatcher, expected: { algorithm: 'sha256', hex: wrong } }));
    expect(error).toMatchObject({ code: 'CHECKSUM_MISMATCH' });
    expect(error.message).toContain(wrong);
    expect(error.message).toContain(sha256(files.data));
    expect(error.message).toContain(files.url());
    expect(await exists(scene.dest)).toBe(false);
    expect(await exists(scene.partial)).toBe(false);
    expect(await exists(`${scene.partial}.json`)).toBe(false);
  });

  it('fails at once with DOWNLOAD_NOT_FOUND on 404', async () => {
    files.plan = [404];
    const error = await failure(download({ url: files.url(), dest: scene.dest, dispatcher: scene.dispatcher }));
    expect(error).toMatchObject({ code: 'DOWNLOAD_NOT_FOUND' });
    expect(error.message).toContain(files.url());
    expect(error.message).toContain('404');
    expect(files.requests).toHaveLength(1);
  });

  it('fails at once with DOWNLOAD_FAILED on other 4xx', async () => {
    files.plan = [403];
    const error = await failure(download({ url: files.url(), dest: scene.dest, dispatcher: scene.dispatcher }));
    expect(error).toMatchObject({ code: 'DOWNLOAD_FAILED' });
    expect(error.message).toContain('403');
    expect(files.requests).toHaveLength(1);
  });

  it('retries 5xx with backoff', async () => {
    files.plan = [500, 503];
    const result = await download({ url: files.url(), dest: scene.dest, dispatcher: scene.dispatcher, ...FAST });
    expect(result).toMatchObject({ attempts: 3, bytes: SIZE });
    expect((await readFile(scene.dest)).equals(files.data)).toBe(true);
  });

  it('gives up after the last retry with DOWNLOAD_FAILED naming the URL, attempts and cause', async () => {
    files.plan = [500, 500, 500];
    const error = await failure(download({ url: files.url(), dest: scene.dest, dispatcher: scene.dispatcher, ...FAST, retries: 2 }));
    expect(error).toMatchObject({ code: 'DOWNLOAD_FAILED' });
    expect(error.message).toContain(files.url());
    expect(error.message).toContain('3 attempt');
    expect(error.message).toContain('500');
    expect(files.requests).toHaveLength(3);
  });

  it('times out a stalled server with DOWNLOAD_TIMEOUT after the last retry', async () => {
    files.plan = ['stall', 'stall'];
    const started = performance.now();
    const error = await failure(download({ url: files.url(), dest: scene.dest, dispatcher: scene.dispatcher, ...FAST, idleTimeoutMs: 300, retries: 1 }));
    expect(error).toMatchObject({ code: 'DOWNLOAD_TIMEOUT' });
    expect(files.requests).toHaveLength(2);
    expect(performance.now() - started).toBeGreaterThanOrEqual(550);
  });

  it('follows redirects, up to five', async () => {
    const result = await download({ url: files.url('/redirect'), dest: scene.dest, dispatcher: scene.dispatcher });
    expect(files.requests.map((r) => r.url)).toEqual(['/redirect', '/file.img']);
    expect((await readFile(scene.dest)).equals(files.data)).toBe(true);

    files.requests = [];
    const error = await failure(download({ url: files.url('/loop'), dest: scene.dest, dispatcher: scene.dispatcher }));
    expect(error).toMatchObject({ code: 'DOWNLOAD_FAILED' });
    expect(error.message).toContain('redirect');
    expect(files.requests).toHaveLength(6);
    expect(result.bytes).toBe(SIZE);
  });

  it('rejects bad options with an INVALID_OPTION error naming the option', async () => {
    await expect(download({ url: 'ftp://example.org/x', dest: scene.dest })).rejects.toMatchObject({ code: 'INVALID_OPTION', name: 'InputError' });
    await expect(download({ url: 'ftp://example.org/x', dest: scene.dest })).rejects.toThrow(/"url" option/);
    await expect(download({ url: files.url(), dest: scene.dest, retries: -1 })).rejects.toThrow(/"retries" option/);
    await expect(download({ url: files.url(), dest: scene.dest, expected: { algorithm: 'sha256', hex: 'abc' } })).rejects.toThrow(/"expected.hex" option/);
  });
});

describe('redirects from https', () => {
  // a publisher on https (a self-signed certificate made for 127.0.0.1) whose redirects go where the test says
  let tls: https.Server;
  let tlsDispatcher: Agent;
  const tlsUrl = (path: string) => `https://127.0.0.1:${(tls.address() as AddressInfo).port}${path}`;
  beforeAll(async () => {
    const keys = await mkdtemp(join(tmpdir(), 'kvmtest-tls-'));
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:prime256v1',
          '-nodes',
          '-days',
          '1',
          '-subj',
          '/CN=127.0.0.1',
          '-addext',
          'subjectAltName=IP:127.0.0.1',
          '-keyout',
          join(keys, 'key.pem'),
          '-out',
          join(keys, 'cert.pem'),
        ],
        { stdio: 'pipe' },
      );
      const [key, cert] = await Promise.all([readFile(join(keys, 'key.pem')), readFile(join(keys, 'cert.pem'))]);
      tls = https.createServer({ key, cert }, (req, res) => {
        if (req.url === '/to-http') return void res.writeHead(302, { location: files.url() }).end();
        if (req.url === '/to-https') return void res.writeHead(301, { location: '/stay' }).end();
        if (req.url === '/stay') return void res.writeHead(302, { location: files.url('/SHA256SUMS') }).end(); // downgrade on the 2nd hop
        res.writeHead(404).end();
      });
      tlsDispatcher = new Agent({ connect: { ca: cert } });
    } finally {
      await rm(keys, { recursive: true, force: true });
    }
    tls.listen(0, '127.0.0.1');
    await once(tls, 'listening');
  });
  afterAll(async () => {
    await tlsDispatcher.destroy();
    tls.close();
  });

  it('a redirect from https to plain http is refused (DOWNLOAD_INSECURE), at once and before the http: server is asked', async () => {
    const error = await failure(download({ url: tlsUrl('/to-http'), dest: scene.dest, dispatcher: tlsDispatcher, ...FAST }));
    expect(error).toMatchObject({ code: 'DOWNLOAD_INSECURE', message: expect.stringContaining(`redirects to ${files.url()}: refused`) });
    expect(files.requests).toEqual([]);
    expect(await exists(scene.dest)).toBe(false);
  });

  it('also two hops down, and for a checksum file', async () => {
    const error = await failure(fetchText(tlsUrl('/to-https'), { dispatcher: tlsDispatcher, ...FAST }));
    expect(error).toMatchObject({ code: 'DOWNLOAD_INSECURE', message: expect.stringContaining(`(reached from ${tlsUrl('/to-https')})`) });
    expect(files.requests).toEqual([]);
  });
});
