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
