import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, EnvHttpProxyAgent } from 'undici';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { download } from '../../../../src/image/download/index.js';

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

/** A forward proxy: absolute-URI requests for http:// targets, and CONNECT tunnels (undici 6 tunnels by default). */
function forwardProxy(): { server: http.Server; seen: string[] } {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const upstream = http.request(req.url ?? '', { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    seen.push(`CONNECT ${req.url}`);
    const [host, port] = (req.url ?? '').split(':');
    const upstream = net.connect(Number(port), host, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(socket).pipe(upstream);
    });
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  });
  return { server, seen };
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const sizeOf = (path: string) =>
  stat(path).then(
    (s) => s.size,
    () => -1,
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

describe('proxies', () => {
  const proxy = forwardProxy();
  beforeAll(async () => {
    proxy.server.listen(0, '127.0.0.1');
    await once(proxy.server, 'listening');
  });
  afterAll(async () => {
    proxy.server.closeAllConnections();
    proxy.server.close();
    await once(proxy.server, 'close');
  });
  beforeEach(() => {
    proxy.seen.length = 0;
  });
  const proxyUrl = () => `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}`;
  const target = () => new URL(files.url()).host;

  it("goes through the proxy of an EnvHttpProxyAgent given as dispatcher (a CONNECT tunnel, undici 6's default)", async () => {
    const viaProxy = new EnvHttpProxyAgent({ httpProxy: proxyUrl(), noProxy: '' }); // the default NO_PROXY could spare 127.0.0.1
    try {
      const result = await download({ url: files.url(), dest, dispatcher: viaProxy, expected: { algorithm: 'sha256', hex: sha256(files.data) } });
      expect(result.bytes).toBe(SIZE);
      expect(proxy.seen).toEqual([`CONNECT ${target()}`]);
    } finally {
      await viaProxy.destroy();
    }
  });

  it('honours HTTP_PROXY by default, sending plain http:// requests as absolute URIs (redirects included)', async () => {
    for (const name of ['HTTP_PROXY', 'http_proxy']) vi.stubEnv(name, proxyUrl());
    for (const name of ['NO_PROXY', 'no_proxy']) vi.stubEnv(name, '');
    vi.resetModules(); // a fresh module, so its shared dispatcher is made from this environment
    try {
      const fresh = await import('../../../../src/image/download/index.js');
      const result = await fresh.download({ url: files.url('/redirect'), dest, expected: { algorithm: 'sha256', hex: sha256(files.data) } });
      expect(result.bytes).toBe(SIZE);
      expect(await fresh.fetchText(files.url('/SHA256SUMS'))).toBe(`${sha256(files.data)}  file.img\n`);
      expect(proxy.seen).toEqual([`GET ${files.url('/redirect')}`, `GET ${files.url()}`, `GET ${files.url('/SHA256SUMS')}`]);
    } finally {
      vi.unstubAllEnvs();
    }
  });
});
