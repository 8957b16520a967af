import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { kvmtestError } from '../errors.js';
import { canonical } from './key.js';

/** A setup step, resolved: what it pushes (absolute host paths), the command and how it runs. */
export interface SetupStep {
  push: { source: string; dest: string }[];
  run: string[] | string;
  env: Record<string, string>;
  cwd?: string;
  timeoutMs: number;
}

/**
 * The key of a setup layer: its parent snapshot, the command, its env and cwd, and the content of
 * every pushed path (not its name or time), like a build cache's. The timeout shapes no state. Pure.
 */
export function setupLayerKey(parent: string, step: SetupStep, pushDigests: string[]): string {
  const inputs = { v: 1, parent, run: step.run, env: step.env, cwd: step.cwd, push: step.push.map((p, i) => ({ dest: p.dest, content: pushDigests[i] })) };
  return createHash('sha256').update(canonical(inputs)).digest('hex').slice(0, 24);
}

/** What a step's command looks like in a listing. Pure. */
export function setupLabel(step: SetupStep): string {
  const text = Array.isArray(step.run) ? step.run.join(' ') : step.run;
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 60 ? `${line.slice(0, 59)}…` : line;
}

/**
 * The content digest of a host file or directory tree as a push sends it: relative paths, types,
 * permission bits, file bytes and link targets, in sorted order. A missing path is LOCAL_PATH_NOT_FOUND.
 */
export async function treeDigest(path: string): Promise<string> {
  const hash = createHash('sha256');
  // the root is followed, as push follows it; links inside are content
  const root = await stat(path).catch((error: NodeJS.ErrnoException) => {
    throw kvmtestError('LOCAL_PATH_NOT_FOUND', `cannot push ${path}: ${error.code === 'ENOENT' ? 'no such file or directory on the host' : error.message}`, { cause: error });
  });
  const walk = async (abs: string, rel: string, info: Awaited<ReturnType<typeof stat>>): Promise<void> => {
    const mode = (Number(info.mode) & 0o7777).toString(8);
    if (info.isSymbolicLink()) hash.update(`L ${rel} ${await readlink(abs)}\0`);
    else if (info.isDirectory()) {
      hash.update(`D ${rel} ${mode}\0`);
      for (const name of (await readdir(abs)).sort()) await walk(join(abs, name), rel ? `${rel}/${name}` : name, await lstat(join(abs, name)));
    } else if (info.isFile()) {
      hash.update(`F ${rel} ${mode} ${info.size}\0`);
      await pipeline(createReadStream(abs), async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) hash.update(chunk);
      });
    } else hash.update(`S ${rel}\0`); // sockets, fifos, devices: a push skips them; their presence is all
  };
  await walk(path, '', root);
  return hash.digest('hex');
}
