// Writing files without following symlinks: a link planted at a path is an error, never a redirect.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, open, rename, rm } from 'node:fs/promises';

const { O_WRONLY, O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_NOFOLLOW } = constants;

/** open() flags: a new file only (a link or an existing file there fails). */
export const CREATE_NEW = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;
/** open() flags: append, creating the file; a link there fails with ELOOP. */
export const APPEND_NO_FOLLOW = O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW;
/** open() flags: truncate, creating the file; a link there fails with ELOOP. */
export const TRUNCATE_NO_FOLLOW = O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW;

/** Writes data to path through open(flags): no symlink is followed. */
export async function writeNoFollow(path: string, data: string | Buffer, flags = TRUNCATE_NO_FOLLOW, mode = 0o600): Promise<void> {
  const handle = await open(path, flags, mode);
  try {
    await handle.writeFile(data);
  } finally {
    await handle.close();
  }
}

/**
 * Replaces path with data: written to a new file beside it (O_EXCL|O_NOFOLLOW), then renamed over
 * it. A symlink at path is refused by `refuse` (rename would replace the link, but its presence
 * means someone planted it).
 */
export async function replaceFile(path: string, data: string | Buffer, refuse: (path: string) => Error, mode = 0o600): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeNoFollow(tmp, data, CREATE_NEW, mode);
  try {
    const existing = await lstat(path).catch(() => undefined);
    if (existing && !existing.isFile()) throw refuse(path);
    await rename(tmp, path);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
}
