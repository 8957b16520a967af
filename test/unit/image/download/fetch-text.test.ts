import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'undici';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { KvmtestError } from '../../../../src/errors.js';
import { fetchText } from '../../../../src/image/download/index.js';

/** How the server answers one request; requests beyond the plan get 'ok'. */
type Behaviour =
  | 'ok' // honours Range and If-Range
  | 'ignore-range' // always the whole file, 200
  | 'cut' // full Content-Length, half the body, then (once the client has stored that half) the socket is destroyed
  | 'cut-now' // the same without waiting: the client may lose what it had buffered but not yet written
  | 'half-then-stall' // half the body, then nothing, connection kept open
  | 'stall' // headers, then nothing
  | number; // that status, no file

const SIZE = 3 * 1024 * 1024 + 4321;

class FileServer {
  data: Buffer = Buffer.alloc(0);
  etag = '';
  plan: Behaviour[] = [];
  requests: { url: string; headers: http.IncomingHttpHeaders }[] = [];
  /** Resolves once the client has stored `bytes` bytes of the file. */
  stored: (bytes: number) => Promise<void> = async () => {};
  readonly server = http.createServer((req, res) => this.#handle(req, res));

  setData(data: Buffer): void {
    this.data = data;
    this.etag = `"${createHash('sha1').update(data).digest('hex').slice(0, 16)}"`;
  }

  url(path = '/file.img'): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}${path}`;
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = req.url ?? '/';
    this.requests.push({ url: path, headers: req.headers });
    if (path === '/redirect') return void res.writeHead(302, { location: '/file.img' }).end();
    if (path === '/loop') return void res.writeHead(302, { location: '/loop' }).end();
    const behaviour = this.plan.shift() ?? 'ok';
    if (typeof behaviour === 'number') return void res.writeHead(behaviour).end('no');
    const body = path === '/SHA256SUMS' ? Buffer.from(`${sha256(this.data)}  file.img\n`) : this.data;

    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'];
    const ranged = range !== null && behaviour !== 'ignore-range' && (ifRange === undefined || ifRange === this.etag);
    if (ranged) {
      start = Number(range[1]);
      if (start >= body.length) return void res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
    }
    const slice = body.subarray(start);
    res.writeHead(ranged ? 206 : 200, {
      etag: this.etag,
      'accept-ranges': 'bytes',
      'content-length': slice.length,
      ...(ranged ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
    });
    const half = slice.subarray(0, Math.floor(slice.length / 2));
    if (behaviour === 'cut')
      res.write(
        half,
        () =>
          void this.stored(start + half.length)
            .catch(() => {})
            .finally(() => res.destroy()),
      );
    else if (behaviour === 'cut-now') res.write(half, () => res.destroy());
    else if (behaviour === 'half-then-stall') res.write(half);
    else if (behaviour === 'stall') res.flushHeaders();
    else res.end(slice);
  }
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const sizeOf = (path: string) =>
  stat(path).then(
    (s) => s.size,
    () => -1,
  );
const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => expect.unreachable('should have failed'),
    (error: unknown) => error as KvmtestError,
  );

const files = new FileServer();
let dir: string;
let dest: string;
let partial: string;
let dispatcher: Agent;

beforeAll(async () => {
  files.setData(randomBytes(SIZE));
  files.server.listen(0, '127.0.0.1');
  await once(files.server, 'listening');
});

afterAll(async () => {
  files.server.close();
  await once(files.server, 'close');
});

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kvmtest-download-'));
  dest = join(dir, 'images', 'disk.img'); // a parent that does not exist yet
  partial = `${dest}.partial`;
  dispatcher = new Agent();
  files.stored = (bytes) => vi.waitFor(async () => expect(await sizeOf(partial)).toBeGreaterThanOrEqual(bytes), { timeout: 5000, interval: 5 });
  files.plan = [];
  files.requests = [];
});

afterEach(async () => {
  files.server.closeAllConnections(); // stalled responses
  await dispatcher.destroy();
  await rm(dir, { recursive: true, force: true });
});

describe('fetchText', () => {
  it('returns the text of a small file', async () => {
    expect(await fetchText(files.url('/SHA256SUMS'), { dispatcher })).toBe(`${sha256(files.data)}  file.img\n`);
  });

  it('fails at once with DOWNLOAD_NOT_FOUND on 404', async () => {
    files.plan = [404];
    const error = await failure(fetchText(files.url('/SHA256SUMS'), { dispatcher }));
    expect(error).toMatchObject({ code: 'DOWNLOAD_NOT_FOUND' });
    expect(error.message).toContain('/SHA256SUMS');
    expect(files.requests).toHaveLength(1);
  });

  it('retries 5xx, and refuses a body over maxBytes', async () => {
    files.plan = [502];
    expect(await fetchText(files.url('/SHA256SUMS'), { dispatcher, backoffMs: 5 })).toContain('file.img');
    expect(files.requests).toHaveLength(2);

    const error = await failure(fetchText(files.url(), { dispatcher, maxBytes: 1024 }));
    expect(error).toMatchObject({ code: 'DOWNLOAD_FAILED' });
    expect(error.message).toContain('1024');
  });
});
