import { readFileSync } from 'node:fs';
import { access, constants } from 'node:fs/promises';
import { arch } from 'node:os';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';
import { kvmtestError } from '../errors.js';

/** Full path of an executable on PATH, or undefined. */
export async function which(name: string, path = process.env.PATH ?? ''): Promise<string | undefined> {
  for (const dir of path.split(delimiter).filter(Boolean)) {
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** qemu-system binary name for this host's architecture. */
export function qemuSystemName(hostArch: string = arch()): string {
  const map: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', ppc64: 'ppc64', s390x: 's390x', riscv64: 'riscv64' };
  return `qemu-system-${map[hostArch] ?? hostArch}`;
}

type Family = 'debian' | 'fedora' | 'arch' | 'alpine' | 'suse' | 'unknown';

/** The host's package family, from /etc/os-release, for install hints. */
export function hostFamily(osRelease: string | undefined = readOsRelease()): Family {
  const ids = `${/^ID=(.*)$/m.exec(osRelease ?? '')?.[1] ?? ''} ${/^ID_LIKE=(.*)$/m.exec(osRelease ?? '')?.[1] ?? ''}`.replace(/"/g, '');
  if (/\b(debian|ubuntu)\b/.test(ids)) return 'debian';
  if (/\b(fedora|rhel|centos)\b/.test(ids)) return 'fedora';
  if (/\barch\b/.test(ids)) return 'arch';
  if (/\balpine\b/.test(ids)) return 'alpine';
  if (/\b(suse|opensuse)\b/.test(ids)) return 'suse';
  return 'unknown';
}

const PACKAGES: Record<'qemu' | 'qemu-img' | 'iso', Record<Family, string>> = {
  qemu: { debian: 'qemu-system-x86', fedora: 'qemu-system-x86', arch: 'qemu-system-x86', alpine: 'qemu-system-x86_64', suse: 'qemu-x86', unknown: 'QEMU (qemu-system-x86_64)' },
  'qemu-img': { debian: 'qemu-utils', fedora: 'qemu-img', arch: 'qemu-img', alpine: 'qemu-img', suse: 'qemu-tools', unknown: 'qemu-img' },
  iso: { debian: 'genisoimage', fedora: 'genisoimage', arch: 'cdrtools', alpine: 'xorriso', suse: 'mkisofs', unknown: 'genisoimage or xorriso' },
};
const INSTALL: Record<Family, string> = {
  debian: 'sudo apt-get install -y',
  fedora: 'sudo dnf install -y',
  arch: 'sudo pacman -S',
  alpine: 'sudo apk add',
  suse: 'sudo zypper install',
  unknown: 'install',
};

export function installHint(what: keyof typeof PACKAGES, family: Family = hostFamily()): string {
  return `${INSTALL[family]} ${PACKAGES[what][family]}`;
}

/** The QEMU binary a guest architecture needs, and its Debian package (qemu/arch.ts has both). */
export interface QemuBinary {
  binary: string;
  debianPackage: string;
}

/** How to install one QEMU system emulator: Debian's package name; Fedora, Arch and Alpine name theirs after the binary. */
export function qemuInstallHint(qemu: QemuBinary, family: Family = hostFamily()): string {
  if (qemu.binary === qemuSystemName('x64')) return installHint('qemu', family);
  if (family === 'debian') return `${INSTALL.debian} ${qemu.debianPackage}`;
  if (family === 'fedora' || family === 'arch' || family === 'alpine') return `${INSTALL[family]} ${qemu.binary}`;
  return `install QEMU's ${qemu.binary}`;
}

function readOsRelease(): string | undefined {
  try {
    return readFileSync('/etc/os-release', 'utf8');
  } catch {
    return undefined;
  }
}

export interface IsoTool {
  path: string;
  /** Arguments that make it behave like mkisofs. */
  prefix: string[];
}

export interface HostTools {
  qemu: string;
  qemuImg: string;
  iso: IsoTool;
  /** util-linux's setpriv, to give QEMU a parent-death signal; absent on hosts without it. */
  setpriv?: string;
  /** e2fsprogs' mke2fs, to make a disk image of a pushed tree (bulk pushes); absent: pushes stream. */
  mke2fs?: string;
}

/**
 * Finds QEMU (the system emulator of the guest's architecture; default the host's), qemu-img and an
 * ISO tool; throws with the install command for the first missing one.
 */
export async function findTools(qemuBinary?: QemuBinary): Promise<HostTools> {
  const qemuName = qemuBinary?.binary ?? qemuSystemName();
  const qemu = await which(qemuName);
  if (!qemu) throw kvmtestError('QEMU_NOT_FOUND', `${qemuName} is not on PATH. Install it: ${qemuBinary ? qemuInstallHint(qemuBinary) : installHint('qemu')}`);
  const qemuImg = await which('qemu-img');
  if (!qemuImg) throw kvmtestError('QEMU_IMG_NOT_FOUND', `qemu-img is not on PATH. Install it: ${installHint('qemu-img')}`);
  const iso = await findIsoTool();
  const setpriv = await which('setpriv');
  // a user's PATH often lacks the sbin dirs where e2fsprogs lives
  const mke2fs = await which('mke2fs', `${process.env.PATH ?? ''}${delimiter}/usr/sbin${delimiter}/sbin`);
  return { qemu, qemuImg, iso, ...(setpriv ? { setpriv } : {}), ...(mke2fs ? { mke2fs } : {}) };
}

export async function findIsoTool(): Promise<IsoTool> {
  for (const name of ['genisoimage', 'mkisofs']) {
    const path = await which(name);
    if (path) return { path, prefix: [] };
  }
  const xorriso = await which('xorriso');
  if (xorriso) return { path: xorriso, prefix: ['-as', 'mkisofs'] };
  throw kvmtestError('ISO_TOOL_NOT_FOUND', `neither genisoimage nor xorriso is on PATH; one is needed to write the cloud-init seed. Install one: ${installHint('iso')}`);
}

const versions = new Map<string, Promise<string>>();

/** "7.2.19" from `qemu-system-x86_64 --version` (asked once per binary). */
export function qemuVersion(qemu: string): Promise<string> {
  let version = versions.get(qemu);
  if (!version) {
    version = execa(qemu, ['--version']).then(({ stdout }) => parseQemuVersion(stdout));
    versions.set(qemu, version);
  }
  return version;
}

export function parseQemuVersion(text: string): string {
  return /version (\d+\.\d+(?:\.\d+)?)/.exec(text)?.[1] ?? 'unknown';
}
