/** The host process dies by SIGINT or SIGTERM while holding a guest: QEMU stops, its files go. */
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { goneWithin, isAlive } from './helpers.js';


async function holdThenSignal(signal: 'SIGINT' | 'SIGTERM') {
  const child = execa('node', [join(__dirname, 'fixtures/hold-guest.mjs')], { reject: false, stderr: 'inherit' });
  const [line] = await createInterface({ input: child.stdout! })[Symbol.asyncIterator]().next().then((r) => [r.value as string]);
  const { pid, dir } = JSON.parse(line!) as { pid: number; dir: string };
  expect(isAlive(pid)).toBe(true);
  expect(existsSync(join(dir, 'disk.qcow2'))).toBe(true);
  child.kill(signal);
  const result = await child;
  return { pid, dir, result };
}

describe('host process signals', () => {
  it.concurrent.each(['SIGINT', 'SIGTERM'] as const)('%s to the host process stops the guest and removes its files', async (signal) => {
    const { pid, dir, result } = await holdThenSignal(signal);
    expect(result.signal).toBe(signal);
    expect(await goneWithin(pid, 5000)).toBe(true);
    expect(existsSync(dir)).toBe(false);
  });
});
