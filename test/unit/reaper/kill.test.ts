import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isGuestProcess, reapTarget } from '../../../src/reaper/kill.js';
import { temp } from '../fixtures/temp-roots.js';

/** A process whose command line carries the given name, as QEMU's `-name` does. */
function fakeGuest(name: string) {
  const child = spawn('bash', ['-c', `exec -a ${name} sleep 30`], { stdio: 'ignore' });
  const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_code, signal) => r(signal)));
  return { pid: child.pid!, exited, kill: () => child.kill('SIGKILL') };
}

describe('reaper: processes', () => {
  it('stops a guest whose command line names it, and removes its directory', async () => {
    const guest = fakeGuest('kvmtest-abc123');
    await new Promise((r) => setTimeout(r, 200));
    const dir = mkdtempSync(join(temp, 'kvmtest-'));
    expect(isGuestProcess({ pid: guest.pid, name: 'kvmtest-abc123' })).toBe(true);
    expect(await reapTarget({ pid: guest.pid, name: 'kvmtest-abc123', dir }, [temp], 500)).toBeUndefined();
    expect(await guest.exited).toBe('SIGTERM');
    expect(existsSync(dir)).toBe(false);
  });

  it('never kills a reused pid: a process that does not name the guest is left alone', async () => {
    const other = fakeGuest('not-a-guest');
    await new Promise((r) => setTimeout(r, 200));
    const dir = mkdtempSync(join(temp, 'kvmtest-'));
    expect(isGuestProcess({ pid: other.pid, name: 'kvmtest-abc123' })).toBe(false);
    await reapTarget({ pid: other.pid, name: 'kvmtest-abc123', dir }, [temp], 100);
    expect(() => process.kill(other.pid, 0)).not.toThrow();
    expect(existsSync(dir)).toBe(false);
    other.kill();
    await other.exited;
  });
});
