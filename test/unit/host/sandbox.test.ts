import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sandboxLine } from '../../../src/cli/doctor.js';
import { probeSandbox } from '../../../src/host/sandbox.js';

describe('sandbox probe', () => {
  it('a QEMU that refuses -sandbox is reported as unsupported, with its reason', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvmtest-unit-'));
    const fake = join(dir, 'qemu-system-fake');
    writeFileSync(fake, '#!/bin/sh\necho "qemu-system-fake: -sandbox support is not enabled in this QEMU binary" >&2\nexit 1\n', { mode: 0o755 });
    try {
      expect(await probeSandbox(fake)).toEqual({ supported: false, reason: 'qemu-system-fake: -sandbox support is not enabled in this QEMU binary' });
      expect(await sandboxLine(fake)).toMatchObject({ ok: true, what: 'QEMU sandbox', detail: expect.stringMatching(/^not available/) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
