/**
 * A publisher (a real HTTP server on 127.0.0.1) serving images whose qcow2 header names a host
 * file, as a backing file or as an external data file: the guest would read that file as its disk.
 * Whatever way they arrive (catalog name, URL with a digest, a blob already in the cache), they are
 * refused before anything boots and leave nothing in the cache. A path the user gives keeps its chain.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { prepare } from '../../../src/guest/prepare.js';
import { inspectBase } from '../../../src/image/base.js';
import { baseChain } from '../../../src/image/disk.js';
import { resolveImage } from '../../../src/image/resolve.js';
import { listCached } from '../../../src/image/store.js';
import { buildQemuArgs } from '../../../src/qemu/argv.js';
import { sha256 } from '../fixtures/digest.js';
import { qemuImg, useHostileImages } from '../fixtures/hostile-images.js';

const images = useHostileImages();
const { files } = images;

/** Nothing of a refused image is left: no ref, no blob, no partial download. */
function cacheHoldsNothing(): void {
  const cache = process.env.KVMTEST_CACHE!;
  const blobs = join(cache, 'blobs', 'sha256');
  expect(existsSync(blobs) ? readdirSync(blobs).filter((f) => !f.endsWith('.lock')) : []).toEqual([]);
  const downloads = join(cache, 'downloads');
  expect(existsSync(downloads) ? readdirSync(downloads) : []).toEqual([]);
}

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
    expect(error).toMatchObject({ code: 'IMAGE_INVALID', message: expect.stringContaining(`names an external data file ${JSON.stringify(images.secret)}: refused`) });
    cacheHoldsNothing();
  });

  it('a URL with a digest is refused the same way', async () => {
    const url = `${images.base}/evil-backing.qcow2#sha256=${sha256(files.get('/evil-backing.qcow2')!)}`;
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
    const mine = join(images.work, 'mine.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', images.secret, '-F', 'raw', mine);
    const prep = await prepare({ image: mine });
    expect(prep.base.chain).toEqual([{ path: images.secret, format: 'raw' }]);
    expect(await inspectBase('qemu-img', { kind: 'local', path: mine })).toMatchObject({ backingFile: images.secret });
  });

  it('but no image the user gives, nor any image in its chain, may name an external data file (a host file nobody typed)', async () => {
    const top = join(images.work, 'mine-data.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-o', `data_file=${images.secret},data_file_raw=on`, top, '1M');
    await expect(prepare({ image: top })).rejects.toMatchObject({ code: 'IMAGE_INVALID', message: expect.stringContaining('data file') });
    const over = join(images.work, 'mine-over-data.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', top, '-F', 'qcow2', over);
    await expect(prepare({ image: over })).rejects.toMatchObject({ code: 'IMAGE_INVALID', message: expect.stringContaining('data file') });
  });

  it('a local base opened as untrusted (a capsule stands on it) may have no backing file', async () => {
    const mine = join(images.work, 'mine-backed.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', images.secret, '-F', 'raw', mine);
    await expect(inspectBase('qemu-img', { kind: 'local', path: mine }, { untrusted: { format: 'qcow2' } })).rejects.toMatchObject({ code: 'IMAGE_INVALID' });
  });
});
