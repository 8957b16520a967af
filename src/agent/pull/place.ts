import { lstat, mkdir, mkdtemp, readdir, rename, rm, rmdir } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { type InputError, type KvmtestError, kvmtestError } from '../../errors.js';

/** What is at a host path now, without following it. */
type Found = 'missing' | 'dir' | 'file' | 'symlink' | 'other';

async function found(path: string): Promise<Found> {
  const info = await lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw hostError(path, error);
  });
  if (!info) return 'missing';
  if (info.isSymbolicLink()) return 'symlink';
  if (info.isDirectory()) return 'dir';
  return info.isFile() ? 'file' : 'other';
}

function hostError(dest: string, error: Error): KvmtestError {
  return kvmtestError('HOST_IO', `cannot pull to ${dest}: ${error.message}`, { cause: error });
}

function symlinkError(dest: string, link: string): InputError {
  const where = link === dest ? 'is a symbolic link' : `lies under the symbolic link ${link}`;
  return kvmtestError('PULL_DEST_SYMLINK', `refused to pull to ${dest}: it ${where} (pass the resolved path if you trust the link)`);
}

/**
 * Checks the destination with lstat, component by component from `/`: none may be a symbolic link
 * (a link the guest left in an earlier pull must not steer this one); the missing ones are made as
 * directories and checked again. Returns the absolute destination and what is there now.
 */
export async function prepareDestination(dest: string): Promise<{ path: string; now: Found; made: string[] }> {
  const path = resolve(dest);
  const parts = path.split(sep).filter(Boolean);
  const made: string[] = [];
  let at: string = sep;
  for (let i = 0; i < parts.length; i++) {
    at = join(at, parts[i]!);
    const last = i === parts.length - 1;
    let now = await found(at);
    if (now === 'missing' && !last) {
      await mkdir(at).then(
        () => made.push(at),
        (error: NodeJS.ErrnoException) => {
          if (error.code !== 'EEXIST') throw hostError(dest, error);
        },
      );
      now = await found(at);
    }
    if (now === 'symlink') throw symlinkError(path, at);
    if (last) return { path, now, made };
    if (now !== 'dir') throw kvmtestError('HOST_IO', `cannot pull to ${dest}: ${at} is not a directory`);
  }
  return { path, now: 'dir', made }; // `/` itself
}

/** Undoes prepareDestination's directories after a failed pull (those still empty). */
export async function removeMade(made: string[]): Promise<void> {
  for (const dir of [...made].reverse()) await rmdir(dir).catch(() => {});
}

/** Where a pull lands once its kind is known: a file at dest (or inside dest, a directory); a directory's contents at dest. */
export async function finalTarget(dest: { path: string; now: Found }, kind: 'file' | 'dir', source: string): Promise<string> {
  if (kind === 'file') {
    if (dest.now !== 'dir') {
      if (dest.now === 'other') throw kvmtestError('HOST_IO', `cannot pull to ${dest.path}: it exists and is not a regular file`);
      return dest.path;
    }
    const inside = join(dest.path, basename(source));
    const now = await found(inside);
    if (now === 'symlink') throw symlinkError(inside, inside);
    if (now === 'dir' || now === 'other') throw kvmtestError('HOST_IO', `cannot pull to ${inside}: it exists and is not a regular file`);
    return inside;
  }
  if (dest.now === 'dir') {
    if (
      (
        await readdir(dest.path).catch((error: Error) => {
          throw hostError(dest.path, error);
        })
      ).length > 0
    )
      throw notEmpty(dest.path);
  } else if (dest.now !== 'missing') {
    throw kvmtestError('HOST_IO', `cannot pull a directory to ${dest.path}: it exists and is not a directory`);
  }
  return dest.path;
}

function notEmpty(path: string): InputError {
  return kvmtestError('PULL_DEST_NOT_EMPTY', `refused to pull a directory into ${path}: it exists and is not empty (a pull lands whole in a new or empty directory)`);
}

/**
 * A fresh private directory (0700, a new name: mkdtemp fails rather than reuse anything) next to
 * the destination, so that the final move is a rename on one file system.
 */
export async function makeStage(dest: string): Promise<string> {
  return mkdtemp(join(dirname(dest), '.kvmtest-pull-')).catch((error: Error) => {
    throw hostError(dest, error);
  });
}

/** Moves the finished tree (or file) into place with one rename, after checking the parents again. */
export async function moveIntoPlace(from: string, target: string): Promise<void> {
  const parent = await prepareDestination(dirname(target));
  if (parent.now !== 'dir') throw kvmtestError('HOST_IO', `cannot pull to ${target}: ${parent.path} is not a directory`);
  if ((await found(target)) === 'symlink') throw symlinkError(target, target);
  await rename(from, target).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOTEMPTY' || error.code === 'EEXIST') throw notEmpty(target);
    throw hostError(target, error);
  });
}

/** Removes the private directory and whatever a failed pull left in it; links inside are removed, never followed. */
export async function removeStage(stage: string): Promise<void> {
  await rm(stage, { recursive: true, force: true });
}
