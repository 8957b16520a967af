import { access } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { mountImage } from '../attach/mount.js';
import { mke2fsPath } from '../attach/push.js';
import { toolchainImage } from '../attach/toolchain.js';
import { kvmtestError } from '../errors.js';
import { type Guest, machineOf } from '../guest/guest.js';
import { DEFAULT_PATH } from '../protocol/shared.js';

/** Where the host's Node.js goes in the guest; its bin/ is put first on PATH. */
export const GUEST_NODE_PREFIX = '/opt/kvmtest/node';

export interface HostNode {
  version: string;
  binary: string;
  /** npm's package directory, when the host has npm in the usual place beside node. */
  npmDir?: string;
}

/** The running Node.js and the npm installed beside it (prefix/lib/node_modules/npm). */
export async function findHostNode(): Promise<HostNode> {
  const binary = process.execPath;
  const npmDir = join(dirname(dirname(binary)), 'lib', 'node_modules', 'npm');
  const hasNpm = await access(join(npmDir, 'bin', 'npm-cli.js')).then(
    () => true,
    () => false,
  );
  return { version: process.version, binary, ...(hasNpm ? { npmDir } : {}) };
}

/**
 * Puts the host's node (and npm) in the guest under GUEST_NODE_PREFIX and checks that it runs there:
 * a cached read-only disk image of them mounted there (made once per node binary), or, on a host
 * without mke2fs, a copy. A guest whose C library is too old fails with NODE_UNSUPPORTED saying so.
 * Returns the PATH to run commands with.
 */
export async function installHostNode(vm: Guest, node: HostNode, signal?: AbortSignal): Promise<string> {
  const mke2fs = await mke2fsPath();
  if (mke2fs) await mountImage(machineOf(vm), await toolchainImage(mke2fs, node), GUEST_NODE_PREFIX);
  else await copyHostNode(vm, node, signal);
  const check = await vm.exec([`${GUEST_NODE_PREFIX}/bin/node`, '--version'], signal ? { signal } : {});
  if (!check.ok || check.stdout.trim() !== node.version) {
    const libc = await vm.exec(['sh', '-c', 'ldd --version 2>&1 | head -n1'], signal ? { signal } : {}).then(
      (r) => r.stdout.trim(),
      () => '',
    );
    throw kvmtestError('NODE_UNSUPPORTED', explainNodeFailure(node.version, check.stderr, libc));
  }
  return `${GUEST_NODE_PREFIX}/bin:${DEFAULT_PATH}`;
}

/** The copy, where no image can be made: node, npm, and npm's links. */
async function copyHostNode(vm: Guest, node: HostNode, signal?: AbortSignal): Promise<void> {
  await vm.push(node.binary, `${GUEST_NODE_PREFIX}/bin/node`);
  if (node.npmDir) {
    await vm.push(node.npmDir, `${GUEST_NODE_PREFIX}/lib/node_modules/npm`);
    const link = await vm.exec(
      ['sh', '-c', `cd ${GUEST_NODE_PREFIX}/bin && ln -sf ../lib/node_modules/npm/bin/npm-cli.js npm && ln -sf ../lib/node_modules/npm/bin/npx-cli.js npx`],
      signal ? { signal } : {},
    );
    if (!link.ok) throw kvmtestError('GUEST_IO', `could not link npm in the guest: ${link.stderr.trim()}`);
  }
}

/** Says why the host's node did not run in the guest, in words a user can act on. Pure. */
export function explainNodeFailure(version: string, stderr: string, guestLibc: string): string {
  const missing = [...stderr.matchAll(/version `((?:GLIBC|GLIBCXX|CXXABI)_[\d.]+)' not found/g)].map((m) => m[1]);
  const libc = guestLibc ? ` (guest: ${guestLibc})` : '';
  if (missing.length > 0) {
    return `the host's Node.js ${version} cannot run in this guest: its C library is too old, missing ${[...new Set(missing)].join(', ')}${libc}. Use node: 'guest' with a Node.js from the image, or a newer image`;
  }
  if (/No such file or directory|not found/.test(stderr) && /ld-linux|interpreter/.test(stderr)) {
    return `the host's Node.js ${version} cannot run in this guest: it needs glibc's dynamic loader, which the guest lacks (musl-based image?)${libc}. Use node: 'guest'`;
  }
  return `the host's Node.js ${version} did not run in this guest${libc}: ${stderr.trim().split('\n').slice(-3).join(' ') || 'no output'}. Use node: 'guest' with a Node.js from the image`;
}
