// A capsule is input from anywhere: what its manifest names (a base, a network, sizes, disk
// references) is refused before any QEMU starts. Each refusal here failed open on d23a4ec.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { capsuleBaseImage, checkHostRoom, refuseDiskReferences, reproNetwork, STATE_HEADROOM } from '../../../src/capsule/input.js';
import { type CapsuleManifest, checkManifest, MANIFEST_NAME, MAX_GUEST_PORTS, renderManifest } from '../../../src/capsule/manifest.js';
import { reproCapsule } from '../../../src/guest/repro.js';
import { capsuleManifestOf, writeCapsule } from '../fixtures/capsule.js';

const qemuImg = (...args: string[]) => execFileSync('qemu-img', args, { stdio: 'pipe' });
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kvmtest-unit-capsule-'));
  dirs.push(dir);
  return dir;
}

/** A capsule whose real disk is a qcow2, beside a secret a hostile base points at. */
function hostileScene() {
  const work = tempDir();
  const capsule = join(work, 'capsule');
  execFileSync('mkdir', [capsule]);
  const secret = join(work, 'npmrc');
  writeFileSync(secret, '//registry.npmjs.org/:_authToken=npm_SECRET\n');
  const manifest = writeCapsule(capsule);
  qemuImg('create', '-q', '-f', 'qcow2', join(capsule, 'disk.qcow2'), '1M');
  manifest.files.disk = { bytes: readFileSync(join(capsule, 'disk.qcow2')).length, sha256: sha256(join(capsule, 'disk.qcow2')) };
  const save = (m: CapsuleManifest) => writeFileSync(join(capsule, MANIFEST_NAME), renderManifest(m));
  save(manifest);
  return { work, capsule, secret, manifest, save };
}

describe('the base a capsule names', () => {
  it.each(['base.qcow2', './base.qcow2', '/etc/passwd', '../x/debian-12', 'debian-12/../../etc/shadow', 'https://evil.example/base.qcow2#sha256=00', 'file:///etc/passwd', 'not-a-known-image'])(
    '%s is not a catalog or recipe name: CAPSULE_BASE_MISSING, pass --base',
    async (name) => {
      const m = capsuleManifestOf();
      m.base.name = name;
      await expect(capsuleBaseImage('/caps/one', m, undefined)).rejects.toMatchObject({ code: 'CAPSULE_BASE_MISSING', message: expect.stringContaining('--base FILE') });
    },
  );

  it('a recipe or catalog name is kept, and a file the user passes wins', async () => {
    const m = capsuleManifestOf();
    await expect(capsuleBaseImage('/caps/one', m, undefined)).resolves.toBe('debian-12');
    m.base.name = 'ubuntu-24.04';
    await expect(capsuleBaseImage('/caps/one', m, undefined)).resolves.toBe('ubuntu-24.04');
    m.base.name = './base.qcow2';
    await expect(capsuleBaseImage('/caps/one', m, '/images/mine.qcow2')).resolves.toBe('/images/mine.qcow2');
  });

  it('reproCapsule: a shipped base.qcow2 whose backing file is a host secret is never opened', async () => {
    const { work, capsule, secret, manifest, save } = hostileScene();
    const base = join(work, 'base.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', secret, '-F', 'raw', base, '1M');
    manifest.base = { name: base, sha256: sha256(base), format: 'qcow2', virtualSize: 2 ** 20 };
    save(manifest);
    await expect(reproCapsule(capsule)).rejects.toMatchObject({ code: 'CAPSULE_BASE_MISSING' });
  });

  it('reproCapsule --base: a base that names a data file or a backing file is refused, even typed by the user', async () => {
    const { work, capsule, secret, manifest, save } = hostileScene();
    for (const [name, args] of [
      ['data.qcow2', ['-o', `data_file=${secret},data_file_raw=on`]],
      ['backed.qcow2', ['-b', secret, '-F', 'raw']],
    ] as const) {
      const base = join(work, name);
      qemuImg('create', '-q', '-f', 'qcow2', ...args, base, '1M');
      manifest.base.sha256 = sha256(base);
      save(manifest);
      const error = await reproCapsule(capsule, { base }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'CAPSULE_BASE_MISSING' });
      expect((error as Error).message).not.toContain('npm_SECRET');
      expect(((error as Error).cause as { code?: string }).code).toBe('IMAGE_INVALID');
    }
  });
});

describe('refuseDiskReferences', () => {
  it('refuses a capsule disk naming an external data file, and a mounted disk naming a backing file', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'secret'), 'secret');
    qemuImg('create', '-q', '-f', 'qcow2', '-o', `data_file=${join(dir, 'secret')},data_file_raw=on`, join(dir, 'data.qcow2'), '1M');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', join(dir, 'secret'), '-F', 'raw', '-u', join(dir, 'backed.qcow2'), '1M');
    await expect(refuseDiskReferences('/caps/one', join(dir, 'data.qcow2'), true)).rejects.toMatchObject({ code: 'CAPSULE_DAMAGED', message: expect.stringContaining('data file') });
    await expect(refuseDiskReferences('/caps/one', join(dir, 'backed.qcow2'), true)).resolves.toBeUndefined();
    await expect(refuseDiskReferences('/caps/one', join(dir, 'backed.qcow2'), false)).rejects.toMatchObject({ code: 'CAPSULE_DAMAGED', message: expect.stringContaining('backing file') });
    execFileSync('mkfifo', [join(dir, 'fifo.qcow2')]);
    await expect(refuseDiskReferences('/caps/one', join(dir, 'fifo.qcow2'), true)).rejects.toMatchObject({ code: 'CAPSULE_DAMAGED' });
  });
});

describe('the network a restored machine gets', () => {
  it('keeps the NIC and its forwards, reaching nothing unless the user asks (--network)', () => {
    const { network } = capsuleManifestOf().machine;
    expect(reproNetwork(network, false)).toEqual({ forwards: [{ guest: 22 }, { guest: 8080 }], outbound: false });
    expect(reproNetwork(network, true)).toEqual({ forwards: [{ guest: 22 }, { guest: 8080 }], outbound: true });
    expect(reproNetwork(false, true)).toBe(false);
  });

  it(`a manifest lists at most ${MAX_GUEST_PORTS} different forwarded ports`, () => {
    const many = capsuleManifestOf();
    many.machine.network = { guestPorts: Array.from({ length: MAX_GUEST_PORTS + 1 }, (_, k) => 1000 + k), outbound: false };
    expect(() => checkManifest(many)).toThrow(expect.objectContaining({ code: 'CAPSULE_DAMAGED', message: expect.stringContaining('guestPorts') }));
    const twice = capsuleManifestOf();
    twice.machine.network = { guestPorts: [22, 22], outbound: false };
    expect(() => checkManifest(twice)).toThrow(expect.objectContaining({ code: 'CAPSULE_DAMAGED' }));
  });
});

describe('room for the state', () => {
  const gib = 2 ** 30;
  it('a state that would fill the temp dir, or a guest larger than the host, is CAPSULE_INCOMPATIBLE before a byte is unpacked', () => {
    const m = capsuleManifestOf();
    m.stateBytes = 1 * gib;
    expect(() => checkHostRoom('/c', m, { freeBytes: gib + STATE_HEADROOM, memoryBytes: 16 * gib }, '/tmp')).not.toThrow();
    expect(() => checkHostRoom('/c', m, { freeBytes: gib + STATE_HEADROOM - 1, memoryBytes: 16 * gib }, '/tmp')).toThrow(
      expect.objectContaining({ code: 'CAPSULE_INCOMPATIBLE', message: expect.stringContaining('TMPDIR') }),
    );
    m.machine.memoryMiB = 32 * 1024;
    expect(() => checkHostRoom('/c', m, { freeBytes: 100 * gib, memoryBytes: 16 * gib }, '/tmp')).toThrow(
      expect.objectContaining({ code: 'CAPSULE_INCOMPATIBLE', message: expect.stringContaining('memory') }),
    );
  });
});
