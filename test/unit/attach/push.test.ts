import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { choosePushPath, DISK_THRESHOLD, describeSource } from '../../../src/attach/push.js';
import { useTempRoots } from '../fixtures/temp-roots.js';

describe('choosePushPath', () => {
  const small = { bytes: 1024, entries: 3 };
  it("'auto' streams what is small and attaches what is large: 16 MiB or 256 entries", () => {
    expect(choosePushPath('auto', { kind: 'dir', ...small }, true)).toBe('stream');
    expect(choosePushPath('auto', { kind: 'dir', bytes: DISK_THRESHOLD.bytes, entries: 3 }, true)).toBe('disk');
    expect(choosePushPath('auto', { kind: 'dir', bytes: 10, entries: DISK_THRESHOLD.entries }, true)).toBe('disk');
    expect(choosePushPath('auto', { kind: 'file', bytes: DISK_THRESHOLD.bytes - 1, entries: 1 }, true)).toBe('stream');
    expect(choosePushPath('auto', { kind: 'file', bytes: DISK_THRESHOLD.bytes, entries: 1 }, true)).toBe('disk');
  });

  it("without mke2fs 'auto' streams a tree (a file needs no image), and an explicit choice is kept", () => {
    expect(choosePushPath('auto', { kind: 'dir', bytes: 2 ** 30, entries: 9999 }, false)).toBe('stream');
    expect(choosePushPath('auto', { kind: 'file', bytes: 2 ** 30, entries: 1 }, false)).toBe('disk');
    expect(choosePushPath('disk', { kind: 'dir', ...small }, false)).toBe('disk');
    expect(choosePushPath('stream', { kind: 'file', bytes: 2 ** 30, entries: 1 }, true)).toBe('stream');
  });
});

describe('describeSource', () => {
  const roots = useTempRoots();
  it('a file by its size and mode, a tree by its entries; what is missing or special is left to the streamed push (undefined)', async () => {
    const dir = roots.makeRoot();
    writeFileSync(join(dir, 'f'), 'abc', { mode: 0o640 });
    expect(await describeSource(join(dir, 'f'))).toEqual({ kind: 'file', bytes: 3, entries: 1, mode: 0o640 });
    expect(await describeSource(dir)).toMatchObject({ kind: 'dir', bytes: 3, entries: 2 });
    expect(await describeSource(join(dir, 'missing'))).toBeUndefined();
    expect(await describeSource('/dev/null')).toBeUndefined();
  });
});
