import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { kvmtestError } from '../errors.js';
import type { IsoTool } from '../host/tools.js';

/** Writes the NoCloud files into dir and packs them into an ISO9660 volume labelled cidata. */
export async function writeSeedIso(tool: IsoTool, dir: string, files: Record<string, string>, output: string): Promise<string> {
  const names = Object.keys(files);
  for (const name of names) await writeFile(join(dir, name), files[name]!, { mode: 0o600 });
  const args = [...tool.prefix, '-quiet', '-output', output, '-volid', 'cidata', '-joliet', '-rock', ...names];
  const result = await execa(tool.path, args, { cwd: dir, reject: false });
  if (result.exitCode !== 0) {
    throw kvmtestError('HOST_IO', `${tool.path} could not write the cloud-init seed: ${result.stderr.trim() || `exit ${result.exitCode}`}`);
  }
  return output;
}
