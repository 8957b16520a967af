import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileDigest } from '../../../src/snapshot/digest.js';

describe('content digest memo', () => {
  it('notices a same-size rewrite whose mtime was put back (ctime moved)', async () => {
    const top = mkdtempSync(join(tmpdir(), 'kvmtest-digest-'));
    const saved = process.env.KVMTEST_CACHE;
    process.env.KVMTEST_CACHE = join(top, 'cache');
    try {
      const file = join(top, 'base.img');
      writeFileSync(file, 'A'.repeat(4096));
      utimesSync(file, 1_700_000_000, 1_700_000_000); // whole seconds: utimes can put them back exactly
      const before = statSync(file, { bigint: true });
      const first = await fileDigest(file);
      expect(await fileDigest(file)).toBe(first); // remembered
      // same size, same inode, mtime restored: only ctime tells (rewrite until the kernel's clock ticked)
      let after = before;
      while (after.ctimeNs === before.ctimeNs) {
        writeFileSync(file, 'B'.repeat(4096));
        utimesSync(file, 1_700_000_000, 1_700_000_000);
        after = statSync(file, { bigint: true });
      }
      expect([after.size, after.ino, after.mtimeNs]).toEqual([before.size, before.ino, before.mtimeNs]);
      const second = await fileDigest(file);
      expect(second).not.toBe(first);
      expect(second).toBe(createHash('sha256').update('B'.repeat(4096)).digest('hex'));
    } finally {
      if (saved === undefined) delete process.env.KVMTEST_CACHE;
      else process.env.KVMTEST_CACHE = saved;
      rmSync(top, { recursive: true, force: true });
    }
  });
});
