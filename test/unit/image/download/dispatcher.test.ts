import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { EnvHttpProxyAgent } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { download } from '../../../../src/image/download/index.js';
import { sha256 } from '../../fixtures/digest.js';
import { SIZE, useDownloadScene } from '../../fixtures/download-scene.js';

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

const scene = useDownloadScene();
const { files } = scene;

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
      const result = await download({ url: files.url(), dest: scene.dest, dispatcher: viaProxy, expected: { algorithm: 'sha256', hex: sha256(files.data) } });
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
      const result = await fresh.download({ url: files.url('/redirect'), dest: scene.dest, expected: { algorithm: 'sha256', hex: sha256(files.data) } });
      expect(result.bytes).toBe(SIZE);
      expect(await fresh.fetchText(files.url('/SHA256SUMS'))).toBe(`${sha256(files.data)}  file.img\n`);
      expect(proxy.seen).toEqual([`GET ${files.url('/redirect')}`, `GET ${files.url()}`, `GET ${files.url('/SHA256SUMS')}`]);
    } finally {
      vi.unstubAllEnvs();
    }
  });
});
