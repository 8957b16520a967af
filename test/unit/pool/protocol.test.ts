import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseFromOwner, parseToOwner, poolKey, sharedOptions } from '../../../src/pool/protocol.js';
import { RemoteQemu } from '../../../src/pool/remote-qemu.js';

describe('the shared pool protocol', () => {
  it('keys a starting point by its options, whatever the order of fields', () => {
    expect(poolKey({ image: 'debian-12', cpus: 2, setup: { run: 'true', env: { B: '1', A: '2' } } })).toBe(poolKey({ setup: { env: { A: '2', B: '1' }, run: 'true' }, cpus: 2, image: 'debian-12' }));
    expect(poolKey({ image: 'debian-12' })).not.toBe(poolKey({ image: 'debian-13' }));
    expect(poolKey({ image: 'debian-12', hostname: undefined })).toBe(poolKey({ image: 'debian-12' }));
  });

  it('sends no signal and no progress across processes', () => {
    expect(sharedOptions({ image: 'debian-12', signal: AbortSignal.timeout(1000), progress: true, cpus: 1 })).toEqual({ image: 'debian-12', cpus: 1 });
  });

  it('takes well-formed lines and ignores anything else', () => {
    expect(parseToOwner('{"t":"take","id":1,"options":{"image":"debian-12"}}')).toMatchObject({ t: 'take', id: 1 });
    expect(parseToOwner('{"t":"kill","name":"kvmtest-1","signal":"SIGTERM"}')).toMatchObject({ t: 'kill' });
    expect(parseToOwner('{"t":"return","name":"kvmtest-1"}')).toMatchObject({ t: 'return' });
    for (const bad of ['', 'nope', '[]', 'null', '{"t":"take","id":"1","options":{"image":"x"}}', '{"t":"take","id":1,"options":{}}', '{"t":"kill","name":"x","signal":"SIGSTOP"}', '{"t":"other"}']) {
      expect(parseToOwner(bad)).toBeUndefined();
    }
    expect(parseFromOwner('{"t":"exited","name":"kvmtest-1","exit":{"code":0,"signal":null,"stderr":""}}')).toMatchObject({ t: 'exited' });
    expect(parseFromOwner('{"t":"error","id":2,"code":"BOOT_TIMEOUT","message":"m"}')).toMatchObject({ t: 'error' });
    for (const bad of ['{"t":"lease","id":1}', '{"t":"panic","name":1,"line":"x"}', '{"t":"exited","name":"x"}', '{']) expect(parseFromOwner(bad)).toBeUndefined();
  });
});

describe('RemoteQemu: a QEMU another process runs', () => {
  it("asks its owner for signals until the owner says it exited, and reads the console log's last lines", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'remote-qemu-'));
    const log = join(dir, 'console.log');
    writeFileSync(log, `${'x'.repeat(100_000)}\n${Array.from({ length: 60 }, (_, i) => `line ${i}`).join('\n')}`);
    const asked: string[] = [];
    const qemu = new RemoteQemu(1234, log, (signal) => asked.push(signal));
    const panics: string[] = [];
    qemu.console.onFatal((verdict) => panics.push(verdict.line));
    expect(qemu.console.lastLines(2)).toBe('line 58\nline 59');
    qemu.kill('SIGTERM');
    qemu.panicked('Kernel panic - not syncing');
    qemu.exitedWith({ code: 0, signal: null, stderr: '' });
    qemu.kill();
    expect(asked).toEqual(['SIGTERM']);
    expect(panics).toEqual(['Kernel panic - not syncing']);
    expect(await qemu.exited).toEqual({ code: 0, signal: null, stderr: '' });
    expect(qemu.hasExited).toBeDefined();
    rmSync(dir, { recursive: true });
    expect(qemu.console.lastLines()).toBe('');
  });
});
