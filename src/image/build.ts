import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import createDebug from 'debug';
import { execa } from 'execa';
import { kvmtestError } from '../errors.js';
import { defaultArch, type MachineArch } from '../qemu/arch.js';
import { withLock } from '../util/lock.js';
import { TailBuffer } from '../util/tail.js';
import { cacheDirExists, cacheFileExists, cachePath } from './cache.js';
import { checkRecipeArch, debianArch, RECIPES, type RecipeName, recipeDir, recipeKey } from './recipes.js';

const debug = createDebug('kvmtest:image');

/** A built image in the cache: its disk plus kernel, initrd and command line for direct boot. */
export interface BuiltImage {
  name: RecipeName;
  /** The guest architecture it was built for. */
  arch: MachineArch;
  dir: string;
  disk: string;
  kernel: string;
  initrd: string;
  append: string;
}

interface ImageManifest {
  disk: string;
  kernel: string;
  initrd: string;
  append: string;
}

/** What debootstrap checks the archive's signatures against (the recipe forces the check, mirror or not). */
export const DEBIAN_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';
/** Where a foreign-architecture build registers its qemu-user handler (`kvmtest-ARCH-PID`). */
const BINFMT_DIR = '/proc/sys/fs/binfmt_misc';
const BUILD_HANDLER = /^kvmtest-[a-z0-9]+-([1-9][0-9]*)$/;

/** How often a running build says it is still going. */
const BUILD_HEARTBEAT_MS = 60_000;

export interface BuildOptions {
  /** Called with each progress line of the build. */
  onLine?: (line: string) => void;
  signal?: AbortSignal;
  /** Rebuild even when the cache has the image. */
  force?: boolean;
  /** The guest architecture (default the host's); one the recipe has (IMAGE_UNKNOWN otherwise). */
  arch?: string;
}

/**
 * Returns the named image from the cache, building it first when the cache lacks it (keyed by the
 * recipe's content). Concurrent callers build once: one holds the lock, the others wait for it.
 */
export async function ensureImage(name: RecipeName, options: BuildOptions = {}): Promise<BuiltImage> {
  const arch = checkRecipeArch(name, options.arch ?? defaultArch());
  const { root, dir } = await builtPaths(name, arch);
  if (!options.force) {
    const ready = await readBuilt(name, arch, dir);
    if (ready) return ready;
  }
  return withLock(dir, { staleMs: 60_000, updateMs: 10_000, retries: 2000, minWaitMs: 500, maxWaitMs: 2000 }, async () => {
    if (!options.force) {
      const ready = await readBuilt(name, arch, dir);
      if (ready) return ready;
    }
    await build(name, arch, dir, options);
    await prune(root, name, arch, dir);
    const built = await readBuilt(name, arch, dir);
    if (!built) throw kvmtestError('IMAGE_BUILD_FAILED', `the ${name} recipe finished but left no image.json in ${dir}`);
    return built;
  });
}

/** The built image of this name, architecture (default the host's) and the current recipe, if the cache has it (no build). */
export async function findBuilt(name: RecipeName, arch: string = defaultArch()): Promise<BuiltImage | undefined> {
  const checked = checkRecipeArch(name, arch);
  return readBuilt(name, checked, (await builtPaths(name, checked)).dir);
}

async function builtPaths(name: RecipeName, arch: MachineArch): Promise<{ root: string; dir: string }> {
  const root = await cachePath('images');
  return { root, dir: join(root, `${name}-${arch}-${await recipeKey(name, arch)}`) };
}

async function build(name: RecipeName, arch: MachineArch, dir: string, options: BuildOptions): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw kvmtestError(
      'IMAGE_BUILD_FAILED',
      `building ${name} runs debootstrap, which needs root: run \`sudo npx kvmtest image build ${name}\` once (the image is cached for every user of this cache directory)`,
    );
  }
  await checkKeyring(name);
  await removeStaleHandlers();
  const tmp = `${dir}.tmp-${randomBytes(4).toString('hex')}`;
  await mkdir(tmp, { recursive: true });
  const script = join(recipeDir(name), 'build.sh');
  const say = options.onLine ?? (() => {});
  say(`[image] building ${name} (Debian ${RECIPES[name].suite}, ${arch}) into ${dir}`);
  const child = execa('bash', [script, RECIPES[name].suite, tmp, debianArch(arch)], { all: true, buffer: false, reject: false, ...(options.signal ? { cancelSignal: options.signal } : {}) });
  const tail = new TailBuffer(40);
  const lines = createInterface({ input: child.all! });
  const started = Date.now();
  let step = 'starting';
  lines.on('error', () => {});
  lines.on('line', (line) => {
    tail.push(line);
    if (line.startsWith('[image]')) {
      step = line.replace(/^\[image\]\s*/, '');
      say(line);
    } else debug(line);
  });
  // a step takes minutes (debootstrap under emulation: ten): say it is still going
  const heartbeat = setInterval(() => say(`[image] ${name} (${arch}): ${step.split(' (')[0]}, ${Math.round((Date.now() - started) / 1000)} s so far`), BUILD_HEARTBEAT_MS);
  const result = await child.finally(() => clearInterval(heartbeat));
  if (result.exitCode !== 0 || result.isCanceled) {
    await rm(tmp, { recursive: true, force: true });
    throw kvmtestError('IMAGE_BUILD_FAILED', `building ${name} failed (${result.isCanceled ? 'cancelled' : `exit ${result.exitCode}`}); last lines:\n${tail.toString()}`);
  }
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  say(`[image] ${name} ready`);
}

async function readBuilt(name: RecipeName, arch: MachineArch, dir: string): Promise<BuiltImage | undefined> {
  if (!(await cacheDirExists(dir))) return undefined;
  let manifest: ImageManifest;
  try {
    manifest = JSON.parse(await readFile(join(dir, 'image.json'), 'utf8'));
  } catch {
    return undefined;
  }
  const built = { name, arch, dir, disk: join(dir, manifest.disk), kernel: join(dir, manifest.kernel), initrd: join(dir, manifest.initrd), append: manifest.append };
  // booted from: a symlink planted in the build's place is refused (CACHE_UNSAFE), never followed
  for (const file of [built.disk, built.kernel, built.initrd]) if (!(await cacheFileExists(file))) return undefined;
  return built;
}

/**
 * Removes this image's builds for this architecture and older recipe keys, and abandoned temporary
 * builds; also the host architecture's builds from before names carried one (`debian-12-KEY`).
 */
async function prune(root: string, name: RecipeName, arch: MachineArch, keep: string): Promise<void> {
  const ours = new RegExp(`^${name}-${arch === defaultArch() ? `(${arch}-)?` : `${arch}-`}[0-9a-f]{16}(\\.tmp-[0-9a-f]{8})?$`);
  for (const entry of await readdir(root)) {
    const path = join(root, entry);
    if (path === keep || !ours.test(entry)) continue;
    debug('pruning %s', path);
    await rm(path, { recursive: true, force: true });
  }
}

/** A host without the archive keyring fails here, before debootstrap (which the recipe runs with --force-check-gpg). */
export async function checkKeyring(name: string, keyring = DEBIAN_KEYRING): Promise<void> {
  const info = await stat(keyring).catch(() => undefined);
  if (info?.isFile()) return;
  throw kvmtestError(
    'IMAGE_BUILD_FAILED',
    `building ${name} checks the Debian archive's signatures against ${keyring}, which ${info ? 'is not a file' : 'is missing'}: install the debian-archive-keyring package (apt-get install debian-archive-keyring)`,
  );
}

/**
 * The binfmt_misc handlers (`kvmtest-ARCH-PID`) whose build is gone: a SIGKILLed build.sh never ran
 * its EXIT trap. A live build's handler (its PID still runs build.sh) is kept. Pure.
 */
export function staleHandlers(names: readonly string[], buildRunning: (pid: number) => boolean): string[] {
  return names.filter((name) => {
    const pid = BUILD_HANDLER.exec(name)?.[1];
    return pid !== undefined && !buildRunning(Number(pid));
  });
}

/** Removes the handlers killed builds left (best effort: binfmt_misc may not be mounted). */
async function removeStaleHandlers(dir = BINFMT_DIR): Promise<void> {
  const names = await readdir(dir).catch(() => []);
  for (const name of staleHandlers(names, runsBuildScript)) {
    debug('removing the binfmt_misc handler %s a killed build left', name);
    await writeFile(join(dir, name), '-1').catch((error: unknown) => debug('could not remove %s: %s', name, (error as Error).message));
  }
}

/** Whether this PID is a build script (not a reused PID running something else). */
function runsBuildScript(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      .split('\0')
      .some((arg) => arg === 'build.sh' || arg.endsWith('/build.sh'));
  } catch {
    return false;
  }
}
