import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isKvmtestError } from '../../../src/errors.js';
import { CATALOG, CATALOG_ARCHES, type CatalogEntry, catalogCacheName, catalogSource } from '../../../src/image/catalog.js';
import { loadCatalog } from '../../../src/image/catalog-file.js';
import { parseChecksumFile } from '../../../src/image/checksums.js';
import { PORT_NAME } from '../../../src/protocol/shared.js';
import { nameDigest } from '../fixtures/digest.js';

/** An entry by name, the way resolveImage and `kvmtest image pull` look one up. */
const byName = async (name: string, env: NodeJS.ProcessEnv = {}): Promise<CatalogEntry | undefined> => (await loadCatalog(env)).find((e) => e.name === name);

const arches = (entry: CatalogEntry) => CATALOG_ARCHES.flatMap((arch) => (entry.arches[arch] ? [[arch, entry.arches[arch]] as const] : []));

describe('the catalog', () => {
  it('has unique names of the form family-release', () => {
    const names = CATALOG.map((e) => e.name);
    expect(new Set(names).size).toBe(names.length);
    for (const entry of CATALOG) {
      expect(entry.name).toMatch(/^[a-z]+(?:-[a-z]+)*-\d+(?:\.\d+)*$/);
      expect(entry.name.startsWith(entry.family === 'opensuse' ? 'opensuse-' : `${entry.family}-`)).toBe(true);
      expect(entry.name.endsWith(`-${entry.release}`)).toBe(true);
      expect(entry.title.length).toBeGreaterThan(0);
    }
  });

  it('has the images kvmtest promises', async () => {
    for (const name of [
      'debian-11',
      'debian-12',
      'debian-13',
      'ubuntu-22.04',
      'ubuntu-24.04',
      'fedora-41',
      'fedora-42',
      'alma-9',
      'alma-10',
      'rocky-9',
      'alpine-3.20',
      'alpine-3.21',
      'opensuse-leap-15.6',
    ]) {
      expect((await byName(name))?.name).toBe(name);
    }
  });

  it('has an x86_64 image for every entry, and https image and checksum URLs on the same host for every architecture', () => {
    for (const entry of CATALOG) {
      expect(entry.arches.x86_64, entry.name).toBeDefined();
      for (const [arch, image] of arches(entry)) {
        const url = new URL(image.url);
        const sums = new URL(image.checksum.url);
        expect(url.protocol, `${entry.name} ${arch}`).toBe('https:');
        expect(sums.protocol, `${entry.name} ${arch}`).toBe('https:');
        expect(sums.host, `${entry.name} ${arch}: the checksum must come from the publisher of the image`).toBe(url.host);
        expect(url.pathname, `${entry.name} ${arch}: the file names its architecture`).toMatch(arch === 'x86_64' ? /x86_64|amd64/ : /aarch64|arm64/);
      }
    }
  });

  it('pairs every checksum format with its algorithm', () => {
    for (const entry of CATALOG) {
      for (const [, { checksum }] of arches(entry)) {
        if (checksum.format === 'sha256sums') expect(checksum.algorithm, entry.name).toBe('sha256');
        if (checksum.format === 'sha512sums') expect(checksum.algorithm, entry.name).toBe('sha512');
        expect(['sha256', 'sha512']).toContain(checksum.algorithm);
      }
    }
  });

  it('says how every image boots and where its console and agent port are', () => {
    // the agent finds its port itself: udev's virtio-ports link, else (openrc images: no udev rules) by name in sysfs
    const agent = readFileSync(new URL('../../../guest/agent.py', import.meta.url), 'utf8');
    expect(agent).toContain('"/dev/virtio-ports/" + PORT_NAME');
    expect(agent).toContain('/sys/class/virtio-ports/*/name');
    expect(agent).toContain(`PORT_NAME = "${PORT_NAME}"`);
    for (const entry of CATALOG) {
      expect(['qcow2', 'raw']).toContain(entry.format);
      expect(['systemd', 'openrc']).toContain(entry.init);
      expect(['bios', 'uefi', 'either']).toContain(entry.firmware);
      expect(entry.console).toBe('ttyS0');
      for (const [arch] of arches(entry)) {
        const { firmware, console } = catalogSource(entry, arch);
        expect(['bios', 'uefi', 'either']).toContain(firmware);
        if (arch === 'aarch64') expect(firmware, entry.name).toBe('uefi');
        expect(console, `${entry.name} ${arch}`).toBe(arch === 'x86_64' ? 'ttyS0' : 'ttyAMA0');
      }
    }
  });

  it('has cloud-init in every image (the agent is started from a NoCloud seed), or says why not', () => {
    for (const entry of CATALOG) {
      if (!entry.cloudInit) expect(entry.notes, entry.name).toMatch(/cloud-init/);
      else expect(entry.cloudInit).toBe(true);
    }
  });

  it("wires every entry's checksum file to the name in it: a file in the declared format yields the digest", () => {
    for (const entry of CATALOG) {
      for (const [arch] of arches(entry)) {
        const source = catalogSource(entry, arch);
        const hex = nameDigest(source.algorithm, source.fileName);
        const other = nameDigest(source.algorithm, 'other');
        const text =
          source.checksumFormat === 'bsd'
            ? `SHA256 (other.qcow2) = ${other}\n${source.algorithm.toUpperCase()} (${source.fileName}) = ${hex}\n`
            : source.checksumFormat === 'single'
              ? `${hex}  ${source.fileName}\n`
              : `${other}  other.qcow2\n${hex}  ${source.fileName}\n`;
        expect(parseChecksumFile(text, source.checksumFormat, source.algorithm, source.fileName), `${entry.name} ${arch}`).toBe(hex);
      }
    }
  });
});

describe('catalog helpers', () => {
  const entry: CatalogEntry = {
    name: 'mine-1',
    family: 'debian',
    title: 'Mine 1',
    release: '1',
    arches: {
      x86_64: {
        url: 'https://example.org/images/v1/mine%2B1-amd64.qcow2?sig=abc',
        checksum: { url: 'https://example.org/images/v1/SHA256SUMS', format: 'sha256sums', algorithm: 'sha256' },
      },
    },
    format: 'qcow2',
    firmware: 'bios',
    console: 'ttyS0',
    init: 'systemd',
    cloudInit: true,
  };

  it('catalogSource takes the file name from the URL path, decoded, without the query', async () => {
    expect(catalogSource(entry, 'x86_64')).toEqual({
      url: 'https://example.org/images/v1/mine%2B1-amd64.qcow2?sig=abc',
      checksumUrl: 'https://example.org/images/v1/SHA256SUMS',
      checksumFormat: 'sha256sums',
      algorithm: 'sha256',
      fileName: 'mine+1-amd64.qcow2',
      firmware: 'bios',
      console: 'ttyS0',
    });
    expect(catalogSource((await byName('debian-12'))!, 'aarch64')).toMatchObject({ fileName: 'debian-12-genericcloud-arm64.qcow2', firmware: 'uefi', console: 'ttyAMA0' });
    expect(catalogSource((await byName('alpine-3.21'))!, 'x86_64')).toMatchObject({ fileName: 'nocloud_alpine-3.21.7-x86_64-bios-cloudinit-r0.qcow2', firmware: 'bios', console: 'ttyS0' });
    expect(catalogSource((await byName('ubuntu-24.04'))!, 'x86_64').fileName).toBe('ubuntu-24.04-server-cloudimg-amd64.img');
  });

  it('catalogSource uses checksum.file when the checksum file lists another name', () => {
    const renamed: CatalogEntry = { ...entry, arches: { x86_64: { ...entry.arches.x86_64!, checksum: { ...entry.arches.x86_64!.checksum, file: 'mine-1-build7.qcow2' } } } };
    expect(catalogSource(renamed, 'x86_64').fileName).toBe('mine-1-build7.qcow2');
  });

  it('catalogSource names the architectures there are when the asked one is missing', () => {
    try {
      catalogSource(entry, 'aarch64');
      expect.unreachable();
    } catch (error) {
      expect(isKvmtestError(error) && error.code).toBe('IMAGE_UNKNOWN');
      expect((error as Error).message).toMatch(/mine-1 has no aarch64 image.*it has x86_64/);
    }
  });

  it("caches the host architecture's image under the entry's name and another's as NAME.ARCH", () => {
    expect(catalogCacheName(entry, 'x86_64', 'x86_64')).toBe('mine-1');
    expect(catalogCacheName(entry, 'aarch64', 'x86_64')).toBe('mine-1.aarch64');
    expect(catalogCacheName(entry, 'x86_64', 'aarch64')).toBe('mine-1.x86_64');
    expect(catalogCacheName(entry, 'riscv64', 'x86_64')).toBe('mine-1.riscv64');
  });

  it('an entry is found by exact name only, $KVMTEST_CATALOG entries included', async () => {
    expect((await byName('alpine-3.21'))?.family).toBe('alpine');
    expect(await byName('debian')).toBeUndefined();
    const dir = mkdtempSync(join(tmpdir(), 'kvmtest-catalog-'));
    try {
      writeFileSync(join(dir, 'catalog.json'), JSON.stringify([entry]));
      const env = { KVMTEST_CATALOG: join(dir, 'catalog.json') };
      expect(await byName('mine-1', env)).toEqual(entry);
      expect(await byName('mine', env)).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
