import { createHash } from 'node:crypto';
import { createReadStream, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export function isAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** kvmtest's private guest directories (kvmtest-PID-RANDOM) currently in the temp folder. */
export function guestDirs(): string[] {
  return readdirSync(tmpdir()).filter((name) => /^kvmtest-\d+-\w{12}$/.test(name));
}

/** Waits until a pid is gone (a killed QEMU may linger as a zombie until its new parent reaps it). */
export async function goneWithin(pid: number | undefined, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}
