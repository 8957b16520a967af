import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { QemuProcess } from '../../../src/qemu/process.js';

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('QemuProcess stderr', () => {
  it('keeps the last lines of a flood, bounded, an unfinished last line included', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvmtest-qemu-'));
    made.push(dir);
    // a stand-in for QEMU: 20 000 lines of complaint, then a last word without a newline
    const qemu = QemuProcess.start('/bin/sh', ['-c', 'i=0; while [ $i -lt 20000 ]; do echo "qemu: line $i" >&2; i=$((i+1)); done; printf "qemu: last word" >&2; exit 1'], join(dir, 'console.log'));
    const exit = await qemu.exited;
    await qemu.console.close();
    expect(exit.code).toBe(1);
    expect(exit.stderr.length).toBeLessThanOrEqual(8192);
    expect(exit.stderr).toMatch(/qemu: line 19999\nqemu: last word$/);
    expect(exit.stderr).not.toContain('qemu: line 0\n');
  });
});
