/**
 * Publishers' signatures on checksum files, checked with gpgv against a keyring on the host: a test
 * key made here signs a clear-signed CHECKSUM (Fedora's way) and a detached SHA256SUMS.gpg (Ubuntu's),
 * served by a local publisher. A bad signature stops the pull before the image is asked for; without
 * a keyring the pull goes on and says it was verified against a same-origin checksum only.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { CATALOG, catalogSource } from '../../../src/image/catalog.js';
import { resolveImage } from '../../../src/image/resolve.js';
import { dearmor, signaturePlan } from '../../../src/image/signature.js';
import { catalogEntry } from '../fixtures/catalog-entry.js';
import { sha256 } from '../fixtures/digest.js';
import { startPublisher } from '../fixtures/publisher.js';

const files = new Map<string, Buffer>();
const requests: string[] = [];
let server: Server;
let base: string;
let work: string;
let gnupg: string;
const gpg = (...args: string[]) => execFileSync('gpg', ['--homedir', gnupg, '--batch', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], { stdio: 'pipe' });

function entry(name: string, checksum: string, signature: unknown) {
  const format = checksum.endsWith('CHECKSUM') ? 'bsd' : 'sha256sums';
  return catalogEntry(base, name, { family: 'fedora', title: name, checksum: { url: `${base}/${checksum}`, format, algorithm: 'sha256', signature } });
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'kvmtest-sig-'));
  gnupg = mkdtempSync(join(work, 'gnupg-'));
  gpg('--quick-gen-key', 'kvmtest test publisher <publisher@example.org>', 'ed25519', 'sign', 'never');
  writeFileSync(join(work, 'publisher.asc'), gpg('--armor', '--export'));
  writeFileSync(join(work, 'publisher.gpg'), gpg('--export'));
  gpg('--quick-gen-key', 'someone else <else@example.org>', 'ed25519', 'sign', 'never');

  for (const name of ['signed', 'tampered', 'detached', 'forged', 'nokeyring']) files.set(`/${name}.qcow2`, randomBytes(4096));
  const bsd = (name: string) => `SHA256 (${name}.qcow2) = ${sha256(files.get(`/${name}.qcow2`)!)}\n`;
  const clearsign = (text: string) => {
    writeFileSync(join(work, 'in'), text);
    return gpg('--local-user', 'publisher@example.org', '--clearsign', '--output', '-', join(work, 'in'));
  };
  files.set('/signed-CHECKSUM', clearsign(bsd('signed')));
  // a line for another image added outside the signed part is not read, and a change inside breaks it
  const genuine = clearsign(bsd('tampered')).toString();
  files.set('/tampered-CHECKSUM', Buffer.from(genuine.replace(sha256(files.get('/tampered.qcow2')!), '0'.repeat(64))));
  files.set('/SHA256SUMS', Buffer.from(['detached', 'forged'].map((n) => `${sha256(files.get(`/${n}.qcow2`)!)}  ${n}.qcow2\n`).join('')));
  writeFileSync(join(work, 'sums'), files.get('/SHA256SUMS')!);
  files.set('/SHA256SUMS.gpg', gpg('--local-user', 'publisher@example.org', '--detach-sign', '--output', '-', join(work, 'sums')));
  files.set('/SHA256SUMS.forged.gpg', gpg('--local-user', 'else@example.org', '--detach-sign', '--output', '-', join(work, 'sums')));
  files.set('/nokeyring-CHECKSUM', clearsign(bsd('nokeyring')));

  ({ server, base } = await startPublisher(files, requests));
  const armored = join(work, 'publisher.asc');
  const binary = join(work, 'publisher.gpg');
  const clear = { kind: 'clearsigned', keyrings: [join(work, 'missing.gpg'), armored], package: 'test' };
  writeFileSync(
    join(work, 'catalog.json'),
    JSON.stringify([
      entry('signed', 'signed-CHECKSUM', clear),
      entry('tampered', 'tampered-CHECKSUM', clear),
      entry('detached', 'SHA256SUMS', { kind: 'detached', url: `${base}/SHA256SUMS.gpg`, keyrings: [binary], package: 'test' }),
      entry('forged', 'SHA256SUMS', { kind: 'detached', url: `${base}/SHA256SUMS.forged.gpg`, keyrings: [binary], package: 'test' }),
      entry('nokeyring', 'nokeyring-CHECKSUM', { kind: 'clearsigned', keyrings: [join(work, 'missing.gpg')], package: 'some-keyring' }),
    ]),
  );
  vi.stubEnv('KVMTEST_CATALOG', join(work, 'catalog.json'));
});

beforeEach(() => {
  vi.stubEnv('KVMTEST_CACHE', mkdtempSync(join(work, 'cache-')));
  requests.length = 0;
});

afterAll(() => {
  vi.unstubAllEnvs();
  server.close();
  execFileSync('gpgconf', ['--homedir', gnupg, '--kill', 'gpg-agent'], { stdio: 'ignore' }); // the agent gpg started for the test key
  rmSync(work, { recursive: true, force: true });
});

describe('signed checksum files', () => {
  it('a clear-signed CHECKSUM verified against an armored keyring: the image is pulled, and the ref says whose key vouched', async () => {
    const pulled = await resolveImage('signed');
    expect(pulled).toMatchObject({
      kind: 'catalog',
      cached: { signature: { status: 'verified', detail: expect.stringMatching(/^checksum file signed by key [0-9A-F]{40} \(keyring .*publisher\.asc\)$/) } },
    });
    expect(readFileSync(pulled.path).equals(files.get('/signed.qcow2')!)).toBe(true);
  });

  it('a clear-signed CHECKSUM changed after signing: SIGNATURE_INVALID, and the image is never asked for', async () => {
    await expect(resolveImage('tampered', { retries: 0 })).rejects.toMatchObject({ code: 'SIGNATURE_INVALID', message: expect.stringContaining('tampered-CHECKSUM') });
    expect(requests).toEqual(['/tampered-CHECKSUM']);
  });

  it("a detached signature by the publisher's key passes; one by another key is SIGNATURE_INVALID", async () => {
    await expect(resolveImage('detached')).resolves.toMatchObject({ cached: { signature: { status: 'verified' } } });
    requests.length = 0;
    await expect(resolveImage('forged', { retries: 0 })).rejects.toMatchObject({ code: 'SIGNATURE_INVALID' });
    expect(requests).toEqual(['/SHA256SUMS', '/SHA256SUMS.forged.gpg']);
  });

  it('no keyring on the host: pulled, and recorded as verified against a same-origin checksum only', async () => {
    const pulled = await resolveImage('nokeyring');
    expect(pulled).toMatchObject({
      cached: { signature: { status: 'unverified-no-keyring', detail: expect.stringMatching(/^verified against a same-origin checksum only: .*no keyring is installed .*some-keyring/) } },
    });
  });
});

describe('the catalog says what vouches for each image', () => {
  it('Debian publishes no signature for its cloud images; Ubuntu and Fedora sign, and need a keyring this host lacks', async () => {
    const plan = async (name: string) => signaturePlan(catalogSource(CATALOG.find((e) => e.name === name)!, 'x86_64').signature);
    expect(await plan('debian-12')).toMatchObject({ status: 'none-published', detail: expect.stringContaining('same-origin checksum only') });
    expect((await plan('ubuntu-24.04')).status).toMatch(/^(verified|unverified-no-keyring)$/);
    expect((await plan('fedora-43')).status).toMatch(/^(verified|unverified-no-keyring)$/);
    expect(await plan('alpine-3.21')).toMatchObject({ status: 'unverified-unsupported' });
  });

  it('dearmor: the packets of an armored key block, headers and CRC dropped', () => {
    const armored = readFileSync(join(work, 'publisher.asc'), 'latin1');
    expect(dearmor(armored).equals(readFileSync(join(work, 'publisher.gpg')))).toBe(true);
  });
});
