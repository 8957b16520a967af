import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, statSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { copyVerified, decompressState, describeFile, verifyFiles, writeCompressed } from '../../../src/capsule/files.js';
import { CAPSULE_FILES } from '../../../src/capsule/manifest.js';
import { CAPSULE_STATE, writeCapsule } from '../fixtures/capsule.js';
import { sha256 } from '../fixtures/digest.js';
import { useTempRoots } from '../fixtures/temp-roots.js';

const roots = useTempRoots();

/** N bytes: half random (does not compress), half zeros (does), in 64 KiB chunks. */
function bytesOf(n: number): Buffer {
  return Buffer.concat([randomBytes(Math.floor(n / 2)), Buffer.alloc(n - Math.floor(n / 2))]);
}
const chunked = (data: Buffer, size = 64 * 1024) => Readable.from(Array.from({ length: Math.ceil(data.length / size) }, (_, i) => data.subarray(i * size, (i + 1) * size)));

describe('writeCompressed', () => {
  it('writes the stream gzip-compressed (0600) and returns the bytes in and the file it wrote', async () => {
    const dir = roots.makeRoot();
    const data = bytesOf(3 * 2 ** 20 + 123);
    const path = join(dir, 'state.gz');
    const written = await writeCompressed(chunked(data), path, 16 * 2 ** 20);
    expect(written.inBytes).toBe(data.length);
    expect(written.file).toEqual(await describeFile(path));
    const onDisk = readFileSync(path);
    expect(written.file).toEqual({ bytes: onDisk.length, sha256: sha256(onDisk) });
    expect(gunzipSync(onDisk).equals(data)).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('a stream of exactly `limit` bytes is accepted', async () => {
    const dir = roots.makeRoot();
    const data = bytesOf(2 ** 20);
    const written = await writeCompressed(chunked(data), join(dir, 'state.gz'), 2 ** 20);
    expect(written.inBytes).toBe(2 ** 20);
  });

  /** An endless stream of 64 KiB chunks that counts what it gave and notes when it is stopped. */
  function flood() {
    const chunk = Buffer.alloc(64 * 1024, 1);
    const seen = { produced: 0, stopped: false };
    async function* chunks() {
      try {
        for (;;) {
          seen.produced += chunk.length;
          yield chunk;
        }
      } finally {
        seen.stopped = true;
      }
    }
    return { stream: Readable.from(chunks()), seen };
  }

  it('an endless stream is refused soon after `limit` bytes, and its source is stopped', async () => {
    const dir = roots.makeRoot();
    const { stream, seen } = flood();
    const started = performance.now();
    await expect(writeCompressed(stream, join(dir, 'state.gz'), 2 ** 20)).rejects.toThrow();
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(seen.stopped).toBe(true);
    // read no further than a few buffers past the limit
    expect(seen.produced).toBeLessThan(16 * 2 ** 20);
  });

  it('the refusal of an endless stream is CAPSULE_FAILED naming the limit', async () => {
    const dir = roots.makeRoot();
    await expect(writeCompressed(flood().stream, join(dir, 'state.gz'), 2 ** 20)).rejects.toMatchObject({
      code: 'CAPSULE_FAILED',
      message: expect.stringContaining('more than its memory allows (1048576)'),
    });
  });

  it('refuses to write over an existing file, or through a link (nothing written at its target)', async () => {
    const dir = roots.makeRoot();
    const existing = join(dir, 'state.gz');
    writeFileSync(existing, 'keep me');
    await expect(writeCompressed(Readable.from([Buffer.from('x')]), existing, 100)).rejects.toMatchObject({ code: 'EEXIST' });
    expect(readFileSync(existing, 'utf8')).toBe('keep me');

    const victim = join(roots.makeRoot(), 'victim');
    writeFileSync(victim, 'untouched');
    const link = join(dir, 'link.gz');
    symlinkSync(victim, link);
    await expect(writeCompressed(Readable.from([Buffer.from('x')]), link, 100)).rejects.toMatchObject({ code: expect.stringMatching(/^(EEXIST|ELOOP)$/) });
    expect(readFileSync(victim, 'utf8')).toBe('untouched');

    // a dangling link is not followed to create its target either
    const absent = join(roots.makeRoot(), 'absent');
    const dangling = join(dir, 'dangling.gz');
    symlinkSync(absent, dangling);
    await expect(writeCompressed(Readable.from([Buffer.from('x')]), dangling, 100)).rejects.toMatchObject({ code: expect.stringMatching(/^(EEXIST|ELOOP)$/) });
    expect(existsSync(absent)).toBe(false);
    expect(lstatSync(dangling).isSymbolicLink()).toBe(true);
  });
});

describe('describeFile', () => {
  it('size and sha256 of a regular file; a link is not followed; a directory is not a file', async () => {
    const dir = roots.makeRoot();
    const data = randomBytes(3 * 2 ** 20 + 5);
    writeFileSync(join(dir, 'f'), data);
    await expect(describeFile(join(dir, 'f'))).resolves.toEqual({ bytes: data.length, sha256: sha256(data) });
    symlinkSync(join(dir, 'f'), join(dir, 'l'));
    await expect(describeFile(join(dir, 'l'))).rejects.toMatchObject({ code: 'ELOOP' });
    await expect(describeFile(dir)).rejects.toMatchObject({ code: 'CAPSULE_FAILED', message: expect.stringContaining('not a regular file') });
  });
});

describe('verifyFiles', () => {
  it("passes a capsule whose files match its manifest, and returns each role's path", async () => {
    const dir = roots.makeRoot();
    const manifest = writeCapsule(dir);
    await expect(verifyFiles(dir, manifest)).resolves.toEqual({
      state: join(dir, 'state.gz'),
      disk: join(dir, 'disk.qcow2'),
      seed: join(dir, 'seed.iso'),
      console: join(dir, 'console.log'),
    });
  });

  it('checks only the files the manifest lists (no console: none asked for)', async () => {
    const dir = roots.makeRoot();
    const manifest = writeCapsule(dir);
    delete manifest.files.console;
    unlinkSync(join(dir, 'console.log'));
    const paths = await verifyFiles(dir, manifest);
    expect(Object.keys(paths).sort()).toEqual(['disk', 'seed', 'state']);
  });

  it.each<[string, keyof typeof CAPSULE_FILES, (path: string) => void, RegExp]>([
    ['cut short', 'disk', (path) => truncateSync(path, statSync(path).size - 1), /disk\.qcow2 is \d+ bytes, the manifest says \d+/],
    ['grown', 'seed', (path) => writeFileSync(path, 'x', { flag: 'a' }), /seed\.iso is \d+ bytes, the manifest says \d+/],
    [
      'changed in one byte',
      'state',
      (path) => {
        const data = readFileSync(path);
        data[data.length >> 1]! ^= 0x01;
        writeFileSync(path, data);
      },
      /state\.gz is not the file the manifest names/,
    ],
    ['missing', 'console', (path) => unlinkSync(path), /console\.log is missing/],
    [
      'a link (to an identical copy elsewhere)',
      'disk',
      (path) => {
        const copy = join(roots.makeRoot(), 'disk.qcow2');
        writeFileSync(copy, readFileSync(path));
        unlinkSync(path);
        symlinkSync(copy, path);
      },
      /disk\.qcow2 is a symbolic link/,
    ],
    [
      'a FIFO (an open would wait for a writer forever)',
      'seed',
      (path) => {
        unlinkSync(path);
        execFileSync('mkfifo', [path]);
      },
      /seed\.iso is not a regular file/,
    ],
  ])('a file %s: CAPSULE_DAMAGED naming it', async (_what, role, spoil, message) => {
    const dir = roots.makeRoot();
    const manifest = writeCapsule(dir);
    spoil(join(dir, CAPSULE_FILES[role]));
    await expect(verifyFiles(dir, manifest)).rejects.toMatchObject({ code: 'CAPSULE_DAMAGED', message: expect.stringMatching(message) });
    await expect(verifyFiles(dir, manifest)).rejects.toMatchObject({ message: expect.stringContaining(`the capsule ${dir} cannot be restored`) });
  });
});

describe('decompressState', () => {
  it('a gzip of exactly `bytes` decompresses into a new file', async () => {
    const dir = roots.makeRoot();
    writeCapsule(dir);
    const to = join(dir, 'state.bin');
    await decompressState(dir, join(dir, 'state.gz'), to, CAPSULE_STATE.length);
    expect(readFileSync(to).equals(CAPSULE_STATE)).toBe(true);
    expect(statSync(to).mode & 0o777).toBe(0o600);
    // never over an existing file
    await expect(decompressState(dir, join(dir, 'state.gz'), to, CAPSULE_STATE.length)).rejects.toMatchObject({ code: 'EEXIST' });
  });

  /** A gzip of 5 MiB of zeros: 5 KiB on disk. */
  function bombIn(dir: string): string {
    const bomb = gzipSync(Buffer.alloc(5 * 2 ** 20));
    expect(bomb.length).toBeLessThan(64 * 1024);
    writeFileSync(join(dir, 'state.gz'), bomb);
    return join(dir, 'state.gz');
  }

  it('a gzip that expands beyond `bytes` (a small bomb) is refused while it expands: no more than `bytes` written', async () => {
    const dir = roots.makeRoot();
    await expect(decompressState(dir, bombIn(dir), join(dir, 'state.bin'), 2 ** 20)).rejects.toThrow();
    expect(statSync(join(dir, 'state.bin')).size).toBeLessThanOrEqual(2 ** 20);
  });

  it('the refusal of a bomb is CAPSULE_DAMAGED', async () => {
    const dir = roots.makeRoot();
    await expect(decompressState(dir, bombIn(dir), join(dir, 'state.bin'), 2 ** 20)).rejects.toMatchObject({
      code: 'CAPSULE_DAMAGED',
      message: expect.stringContaining(`holds more than the ${2 ** 20} bytes`),
    });
  });

  it('a gzip shorter than `bytes` is damaged', async () => {
    const dir = roots.makeRoot();
    writeFileSync(join(dir, 'state.gz'), gzipSync(Buffer.alloc(1000, 3)));
    await expect(decompressState(dir, join(dir, 'state.gz'), join(dir, 'state.bin'), 1001)).rejects.toMatchObject({
      code: 'CAPSULE_DAMAGED',
      message: expect.stringContaining('holds 1000 bytes, the manifest says 1001'),
    });
  });

  it('what is not gzip, or a gzip cut short, is refused', async () => {
    const dir = roots.makeRoot();
    writeFileSync(join(dir, 'plain'), Buffer.alloc(4096, 0x51));
    await expect(decompressState(dir, join(dir, 'plain'), join(dir, 'a.bin'), 4096)).rejects.toThrow();
    const whole = gzipSync(randomBytes(100_000));
    writeFileSync(join(dir, 'cut'), whole.subarray(0, whole.length - 100));
    await expect(decompressState(dir, join(dir, 'cut'), join(dir, 'b.bin'), 100_000)).rejects.toThrow();
  });

  it('what is not gzip is CAPSULE_DAMAGED saying so', async () => {
    const dir = roots.makeRoot();
    writeFileSync(join(dir, 'plain'), Buffer.alloc(4096, 0x51));
    await expect(decompressState(dir, join(dir, 'plain'), join(dir, 'a.bin'), 4096)).rejects.toMatchObject({ code: 'CAPSULE_DAMAGED', message: expect.stringContaining('not valid gzip') });
  });

  it('a gzip cut short is CAPSULE_DAMAGED', async () => {
    const dir = roots.makeRoot();
    const whole = gzipSync(randomBytes(100_000));
    writeFileSync(join(dir, 'cut'), whole.subarray(0, whole.length - 100));
    await expect(decompressState(dir, join(dir, 'cut'), join(dir, 'b.bin'), 100_000)).rejects.toMatchObject({ code: 'CAPSULE_DAMAGED' });
  });
});

describe('what QEMU opens is what was checked', () => {
  it('copyVerified copies a capsule file (0600, never over a file) and refuses one that is not the file its manifest names', async () => {
    const dir = roots.makeRoot();
    const manifest = writeCapsule(dir);
    const to = join(dir, 'copy.qcow2');
    await copyVerified(dir, join(dir, CAPSULE_FILES.disk), to, manifest.files.disk);
    expect(readFileSync(to).equals(readFileSync(join(dir, CAPSULE_FILES.disk)))).toBe(true);
    expect(statSync(to).mode & 0o777).toBe(0o600);
    // swapped after the check: same size, other bytes
    const swapped = readFileSync(join(dir, CAPSULE_FILES.disk));
    swapped[10] = swapped[10]! ^ 1;
    writeFileSync(join(dir, CAPSULE_FILES.disk), swapped);
    await expect(copyVerified(dir, join(dir, CAPSULE_FILES.disk), join(dir, 'copy2'), manifest.files.disk)).rejects.toMatchObject({
      code: 'CAPSULE_DAMAGED',
      message: expect.stringContaining('changed'),
    });
    // grown after the check: refused as it passes the size
    writeFileSync(join(dir, CAPSULE_FILES.disk), Buffer.concat([swapped, swapped]));
    await expect(copyVerified(dir, join(dir, CAPSULE_FILES.disk), join(dir, 'copy3'), manifest.files.disk)).rejects.toMatchObject({ code: 'CAPSULE_DAMAGED' });
    // a link put in its place
    unlinkSync(join(dir, CAPSULE_FILES.disk));
    symlinkSync('/etc/passwd', join(dir, CAPSULE_FILES.disk));
    await expect(copyVerified(dir, join(dir, CAPSULE_FILES.disk), join(dir, 'copy4'), manifest.files.disk)).rejects.toMatchObject({ code: 'CAPSULE_DAMAGED' });
  });

  it('decompressState refuses a state.gz swapped after its check, though it is valid gzip of the right size', async () => {
    const dir = roots.makeRoot();
    const manifest = writeCapsule(dir);
    writeFileSync(join(dir, CAPSULE_FILES.state), gzipSync(Buffer.alloc(CAPSULE_STATE.length, 1)));
    await expect(decompressState(dir, join(dir, CAPSULE_FILES.state), join(dir, 'state.bin'), CAPSULE_STATE.length, manifest.files.state)).rejects.toMatchObject({
      code: 'CAPSULE_DAMAGED',
      message: expect.stringContaining('changed'),
    });
  });
});
