import createDebug from 'debug';
import { isKvmtestError } from '../errors.js';
import { type DiskFormat, type DiskInfo, inspectDisk, inspectUntrusted } from './disk.js';
import type { ImageSource } from './resolve.js';
import { removeCached } from './store.js';

const debug = createDebug('kvmtest:image');

/** How far a local base is trusted: `untrusted` for one a capsule stands on (opened as `format`, self-contained). */
export interface BaseTrust {
  untrusted?: { format?: DiskFormat };
}

/**
 * The base disk of a resolved image. A path the user gave is theirs (a backing chain is allowed,
 * unless `untrusted`: a capsule's base, even given by --base, must be self-contained);
 * anything downloaded (or built) is opened as its declared format and must be self-contained. A
 * downloaded image that is refused leaves the cache, so nothing of it is left to boot later.
 */
export async function inspectBase(qemuImg: string, source: ImageSource, options: BaseTrust = {}): Promise<DiskInfo> {
  if (source.kind === 'local' && !options.untrusted) return inspectDisk(qemuImg, source.path);
  if (source.kind === 'local') return inspectUntrusted(qemuImg, source.path, options.untrusted?.format, `the base image ${source.path}`);
  try {
    return await inspectUntrusted(qemuImg, source.path, declaredFormat(source), describeSource(source));
  } catch (error) {
    if ((source.kind === 'catalog' || source.kind === 'url') && isKvmtestError(error) && error.code === 'IMAGE_INVALID') {
      debug('removing refused image %s from the cache', source.cached.name);
      await removeCached(source.cached.name);
    }
    throw error;
  }
}

/** The format a source was declared with: the catalog's, the recipe's; a URL declares none (qcow2 by its magic, else raw). */
function declaredFormat(source: Exclude<ImageSource, { kind: 'local' }>): DiskFormat | undefined {
  if (source.kind === 'catalog') return source.entry.format;
  if (source.kind === 'built') return 'qcow2';
  return undefined;
}

function describeSource(source: Exclude<ImageSource, { kind: 'local' }>): string {
  if (source.kind === 'catalog') return `the downloaded image ${source.entry.name} (${source.cached.url})`;
  if (source.kind === 'url') return `the downloaded image ${source.cached.url}`;
  return `the built image ${source.built.name} (${source.path})`;
}
