// The host's Node.js as a read-only disk image, made once per node binary and npm and kept in the
// cache: a cell mounts it at /opt/kvmtest/node in a fraction of a second instead of copying ~120 MB.
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, copyFile, cp, mkdir, readFile, rename, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { dir as tmpDir } from 'tmp-promise';
import { cachePath } from '../image/cache.js';
import { fileDigest } from '../snapshot/digest.js';
import { exists } from '../util/exists.js';
import { withLock } from '../util/lock.js';
import { makeTreeImage } from './image.js';
import { treeStats } from './tree.js';

export interface Toolchain {
  version: string;
  binary: string;
  npmDir?: string;
}

const LOCK = { staleMs: 30_000, updateMs: 5_000, retries: 600, minWaitMs: 200, maxWaitMs: 1000 };

/** The cached image of a node binary (and its npm): bin/node, bin/npm, bin/npx, lib/node_modules/npm. */
export async function toolchainImage(mke2fs: string, node: Toolchain): Promise<string> {
  const npmVersion = node.npmDir ? (JSON.parse(await readFile(join(node.npmDir, 'package.json'), 'utf8')) as { version?: string }).version : undefined;
  const key = createHash('sha256')
    .update(JSON.stringify({ v: 1, node: await fileDigest(node.binary), npm: npmVersion ?? null }))
    .digest('hex')
    .slice(0, 16);
  const image = join(await cachePath('toolchains'), `node-${node.version}-${key}.img`);
  if (await exists(image, constants.R_OK)) return image;
  return withLock(image, LOCK, async () => {
    if (await exists(image, constants.R_OK)) return image;
    const stage = await tmpDir({ prefix: 'kvmtest-toolchain-', unsafeCleanup: true, mode: 0o700 });
    try {
      const root = join(stage.path, 'root');
      await mkdir(join(root, 'bin'), { recursive: true, mode: 0o755 });
      await chmod(root, 0o755);
      await copyFile(node.binary, join(root, 'bin/node'));
      await chmod(join(root, 'bin/node'), 0o755);
      if (node.npmDir) {
        await cp(node.npmDir, join(root, 'lib/node_modules/npm'), { recursive: true, verbatimSymlinks: true });
        await symlink('../lib/node_modules/npm/bin/npm-cli.js', join(root, 'bin/npm'));
        await symlink('../lib/node_modules/npm/bin/npx-cli.js', join(root, 'bin/npx'));
      }
      const building = `${image}.${process.pid}.tmp`;
      await makeTreeImage(mke2fs, root, await treeStats(root), building);
      await chmod(building, 0o600);
      await rename(building, image);
      return image;
    } finally {
      await stage.cleanup();
      await rm(`${image}.${process.pid}.tmp`, { force: true });
    }
  });
}
