/**
 * The image catalog: stock cloud images kvmtest can boot by name, as data. A new point release or
 * a new distribution release is one edit here (and `npx vitest run --project unit test/unit/catalog.test.ts`).
 * Checked against the publishers' layouts when written; URLs that name a point release or build
 * (Fedora, Alpine) must be bumped by hand, the others follow the publisher's "latest" pointer.
 */
import { posix } from 'node:path';
import { kvmtestError } from '../errors.js';
import { defaultArch } from '../qemu/arch.js';
import type { ChecksumAlgorithm, ChecksumFormat } from './checksums.js';
import type { SignatureSource } from './signature.js';

export type CatalogArch = 'x86_64' | 'aarch64';
export const CATALOG_ARCHES: readonly CatalogArch[] = ['x86_64', 'aarch64'];

export type Family = 'debian' | 'ubuntu' | 'fedora' | 'alma' | 'rocky' | 'alpine' | 'opensuse';
/** What the image boots with: 'either' images carry both a BIOS boot loader and an EFI system partition. */
export type Firmware = 'bios' | 'uefi' | 'either';

export interface ChecksumSource {
  /** The publisher's checksum file. */
  url: string;
  /** `sha256sums`/`sha512sums`: GNU lines; `bsd`: `SHA256 (NAME) = HEX`; `single`: one hash, any name. */
  format: ChecksumFormat;
  algorithm: ChecksumAlgorithm;
  /** The name to look up in the file, when it is not the image URL's basename. */
  file?: string;
  /** How the publisher signs the checksum file, if it does; absent: kvmtest knows of no signature. */
  signature?: SignatureSource;
}

/** One architecture's image; `firmware` and `console` when they differ from the entry's (x86_64) ones. */
export interface ArchImage {
  url: string;
  checksum: ChecksumSource;
  /** aarch64 images always need UEFI (QEMU's virt machine has no BIOS). */
  firmware?: Firmware;
  /** ttyAMA0 on aarch64 (QEMU virt's PL011 UART). */
  console?: string;
}

export interface CatalogEntry {
  /** What users write: `image: 'debian-12'`. */
  name: string;
  family: Family;
  title: string;
  release: string;
  /** x86_64 always; aarch64 where the publisher has it. */
  arches: Partial<Record<CatalogArch, ArchImage>>;
  format: 'qcow2' | 'raw';
  /** What the x86_64 image boots with; an arch's own `firmware` wins (aarch64: always 'uefi'). Use catalogSource(). */
  firmware: Firmware;
  /** The x86_64 image's serial console (ttyS0, the 16550 UART); an arch's own `console` wins. Use catalogSource(). */
  console: string;
  init: 'systemd' | 'openrc';
  /** kvmtest starts its agent from a NoCloud seed: an image without cloud-init cannot be used. */
  cloudInit: boolean;
  notes?: string;
}

/** What every aarch64 image differs by: QEMU's virt machine boots UEFI only and its UART is a PL011. */
const ARM64 = { firmware: 'uefi', console: 'ttyAMA0' } as const;

// ---- per-publisher layouts ----------------------------------------------------------------------

/** cloud.debian.org: `latest/` follows the newest build; SHA512SUMS lists every file of the build. */
function debian(release: string, codename: string, notes: string): CatalogEntry {
  const dir = `https://cloud.debian.org/images/cloud/${codename}/latest`;
  // cloud.debian.org's own page: rely on TLS to its name; only the legacy OpenStack/ images have SHA512SUMS.sign
  const signature: SignatureSource = { kind: 'none-published', note: 'Debian publishes no signature for its cloud images (no SHA512SUMS.sign beside them)' };
  const sums: ChecksumSource = { url: `${dir}/SHA512SUMS`, format: 'sha512sums', algorithm: 'sha512', signature };
  return {
    name: `debian-${release}`,
    family: 'debian',
    title: `Debian ${release} (${codename}) genericcloud`,
    release,
    arches: {
      x86_64: { url: `${dir}/debian-${release}-genericcloud-amd64.qcow2`, checksum: sums },
      aarch64: { url: `${dir}/debian-${release}-genericcloud-arm64.qcow2`, checksum: sums, ...ARM64 },
    },
    format: 'qcow2',
    firmware: 'either',
    console: 'ttyS0',
    init: 'systemd',
    cloudInit: true,
    notes: (
      'genericcloud runs the cloud kernel, which lacks IDE/SATA CD-ROM support: the NoCloud seed must be on virtio (kvmtest attaches it as virtio-blk). ' +
      `x86_64 has a BIOS boot partition and an EFI system partition. ${notes}`
    ).trim(),
  };
}

/** cloud-images.ubuntu.com: `release/` follows the newest serial; SHA256SUMS lines are `HEX *NAME`. */
function ubuntu(release: string, codename: string): CatalogEntry {
  const dir = `https://cloud-images.ubuntu.com/releases/${release}/release`;
  const signature: SignatureSource = { kind: 'detached', url: `${dir}/SHA256SUMS.gpg`, keyrings: ['/usr/share/keyrings/ubuntu-cloudimage-keyring.gpg'], package: 'ubuntu-keyring (on Ubuntu hosts)' };
  const sums: ChecksumSource = { url: `${dir}/SHA256SUMS`, format: 'sha256sums', algorithm: 'sha256', signature };
  return {
    name: `ubuntu-${release}`,
    family: 'ubuntu',
    title: `Ubuntu ${release} LTS (${codename}) server cloudimg`,
    release,
    arches: {
      x86_64: { url: `${dir}/ubuntu-${release}-server-cloudimg-amd64.img`, checksum: sums },
      aarch64: { url: `${dir}/ubuntu-${release}-server-cloudimg-arm64.img`, checksum: sums, ...ARM64 },
    },
    format: 'qcow2',
    firmware: 'either',
    console: 'ttyS0',
    init: 'systemd',
    cloudInit: true,
    notes: `The .img is qcow2. ${dir}/ is the newest serial; dated release-YYYYMMDD/ folders beside it pin one.`,
  };
}

/**
 * Fedora Cloud Base Generic, named after the GA compose (`41-1.4`): `releases/<N>` never changes
 * after GA. Releases past end of life move from download.fedoraproject.org to archives.fedoraproject.org.
 */
function fedora(release: string, compose: string, host: 'current' | 'archive', notes: string): CatalogEntry {
  const base = host === 'current' ? 'https://download.fedoraproject.org/pub/fedora/linux/releases' : 'https://archives.fedoraproject.org/pub/archive/fedora/linux/releases';
  const image = (arch: CatalogArch): ArchImage => {
    const dir = `${base}/${release}/Cloud/${arch}/images`;
    return {
      url: `${dir}/Fedora-Cloud-Base-Generic-${release}-${compose}.${arch}.qcow2`,
      checksum: {
        url: `${dir}/Fedora-Cloud-${release}-${compose}-${arch}-CHECKSUM`,
        format: 'bsd',
        algorithm: 'sha256',
        signature: {
          kind: 'clearsigned',
          keyrings: [`/etc/pki/rpm-gpg/RPM-GPG-KEY-fedora-${release}-primary`, `/usr/share/distribution-gpg-keys/fedora/RPM-GPG-KEY-fedora-${release}-primary`],
          package: 'fedora-gpg-keys (on Fedora hosts) or distribution-gpg-keys',
        },
      },
    };
  };
  return {
    name: `fedora-${release}`,
    family: 'fedora',
    title: `Fedora ${release} Cloud Base Generic (${compose})`,
    release,
    arches: { x86_64: image('x86_64'), aarch64: { ...image('aarch64'), ...ARM64 } },
    format: 'qcow2',
    firmware: 'either',
    console: 'ttyS0',
    init: 'systemd',
    cloudInit: true,
    notes:
      `File names carry the GA compose (${release}-${compose}): a new Fedora release needs its compose number looked up, and the image never receives updates. ` +
      'CHECKSUM is PGP clear-signed BSD lines with "# NAME: SIZE bytes" comments. Root file system is btrfs. ' +
      notes,
  };
}

/** repo.almalinux.org: `-latest` names follow the newest build; CHECKSUM lists them too (BSD lines). */
function alma(release: string, notes: string): CatalogEntry {
  const image = (arch: CatalogArch): ArchImage => {
    const dir = `https://repo.almalinux.org/almalinux/${release}/cloud/${arch}/images`;
    const checksum: ChecksumSource = { url: `${dir}/CHECKSUM`, format: 'bsd', algorithm: 'sha256', signature: unsupported('AlmaLinux') };
    return { url: `${dir}/AlmaLinux-${release}-GenericCloud-latest.${arch}.qcow2`, checksum };
  };
  return {
    name: `alma-${release}`,
    family: 'alma',
    title: `AlmaLinux ${release} GenericCloud`,
    release,
    arches: { x86_64: image('x86_64'), aarch64: { ...image('aarch64'), ...ARM64 } },
    format: 'qcow2',
    firmware: 'either',
    console: 'ttyS0',
    init: 'systemd',
    cloudInit: true,
    notes: `x86_64 boots with BIOS or UEFI (GPT with a BIOS boot partition and an ESP). ${notes}`.trim(),
  };
}

/** dl.rockylinux.org: `.latest.` names follow the newest build; each has its own `.CHECKSUM` (BSD). */
function rocky(release: string): CatalogEntry {
  const image = (arch: CatalogArch): ArchImage => {
    const url = `https://dl.rockylinux.org/pub/rocky/${release}/images/${arch}/Rocky-${release}-GenericCloud-Base.latest.${arch}.qcow2`;
    return { url, checksum: { url: `${url}.CHECKSUM`, format: 'bsd', algorithm: 'sha256', signature: unsupported('Rocky Linux') } };
  };
  return {
    name: `rocky-${release}`,
    family: 'rocky',
    title: `Rocky Linux ${release} GenericCloud Base`,
    release,
    arches: { x86_64: image('x86_64'), aarch64: { ...image('aarch64'), ...ARM64 } },
    format: 'qcow2',
    firmware: 'either',
    console: 'ttyS0',
    init: 'systemd',
    cloudInit: true,
    notes:
      "The .CHECKSUM beside each image names the .latest. file itself; the folder's CHECKSUM lists every image. " +
      'GenericCloud-LVM is the variant with an LVM root. x86_64 BIOS+UEFI is believed (not verified by booting).',
  };
}

/**
 * dl-cdn.alpinelinux.org: one file per point release (no "latest" name); `nocloud_` images with
 * cloud-init (the `-tiny-` ones have tiny-cloud instead). Each image has a `.sha512` beside it.
 */
function alpine(release: string, point: string): CatalogEntry {
  const dir = `https://dl-cdn.alpinelinux.org/alpine/v${release}/releases/cloud`;
  const signature = unsupported('Alpine', 'signs each image itself (a .asc beside it)');
  const image = (file: string): ArchImage => ({ url: `${dir}/${file}`, checksum: { url: `${dir}/${file}.sha512`, format: 'single', algorithm: 'sha512', signature } });
  return {
    name: `alpine-${release}`,
    family: 'alpine',
    title: `Alpine Linux ${point} nocloud cloud-init`,
    release,
    arches: {
      x86_64: image(`nocloud_alpine-${point}-x86_64-bios-cloudinit-r0.qcow2`),
      aarch64: { ...image(`nocloud_alpine-${point}-aarch64-uefi-cloudinit-r0.qcow2`), ...ARM64 },
    },
    format: 'qcow2',
    firmware: 'bios',
    console: 'ttyS0',
    init: 'openrc',
    cloudInit: true,
    notes:
      `Pinned to ${point}, the newest ${release} point release found when this was written: bump it by hand. ` +
      'The x86_64 file is the BIOS variant (SYSLINUX in the MBR of an unpartitioned disk: OVMF cannot boot it); ' +
      `nocloud_alpine-${point}-x86_64-uefi-cloudinit-r0.qcow2 is the UEFI one. ` +
      "python3 is there as cloud-init's dependency; the shell is busybox ash (no bash). " +
      'Without udev rules for virtio ports (mdev) /dev/virtio-ports/ may be missing: the agent falls back to sysfs. ' +
      'Newer releases also publish generic_alpine-… files (cloud-init too) beside these.',
  };
}

/** download.opensuse.org: the unversioned name is a symlink to the newest build. */
function opensuseLeap(release: string): CatalogEntry {
  const image = (arch: CatalogArch): ArchImage => {
    const url = `https://download.opensuse.org/distribution/leap/${release}/appliances/openSUSE-Leap-${release}-Minimal-VM.${arch}-Cloud.qcow2`;
    return { url, checksum: { url: `${url}.sha256`, format: 'single', algorithm: 'sha256', signature: unsupported('openSUSE') } };
  };
  return {
    name: `opensuse-leap-${release}`,
    family: 'opensuse',
    title: `openSUSE Leap ${release} Minimal-VM Cloud`,
    release,
    arches: { x86_64: image('x86_64'), aarch64: { ...image('aarch64'), ...ARM64 } },
    format: 'qcow2',
    firmware: 'either',
    console: 'ttyS0',
    init: 'systemd',
    cloudInit: true,
    notes:
      'The .sha256 holds one "HEX  NAME" line whose NAME is sometimes the versioned build file (…-Cloud-BuildN.M.qcow2) the symlink points to ' +
      '(openSUSE/MirrorCache#523, #528), so it is read as `single`. The image is redirected to a mirror that may lag the checksum for a while after a new build. ' +
      'kiwi EFI images on x86_64 are BIOS+UEFI hybrids. Leap 16.0 names its files Leap-16.0-Minimal-VM.<arch>-Cloud.qcow2.',
  };
}

/** A publisher whose signatures kvmtest does not check: no keyring for them ships in Debian, and their layout was not checked from here. */
function unsupported(publisher: string, how = 'signs its release files'): SignatureSource {
  return { kind: 'unsupported', note: `${publisher} ${how}, which kvmtest does not check` };
}

// ---- the catalog --------------------------------------------------------------------------------

export const CATALOG: readonly CatalogEntry[] = [
  debian('11', 'bullseye', 'python3 is 3.9.'),
  debian('12', 'bookworm', ''),
  debian('13', 'trixie', ''),
  ubuntu('22.04', 'jammy'),
  ubuntu('24.04', 'noble'),
  fedora('41', '1.4', 'archive', 'Fedora 41 is past end of life: served from archives.fedoraproject.org (download.fedoraproject.org 404s for it).'),
  fedora('42', '1.1', 'archive', 'Fedora 42 is past end of life (May 2026): served from archives.fedoraproject.org.'),
  fedora('43', '1.6', 'current', 'download.fedoraproject.org redirects to a mirror; once Fedora 43 is past end of life switch it to the archive host.'),
  fedora('44', '1.7', 'current', 'download.fedoraproject.org redirects to a mirror.'),
  alma('9', ''),
  alma(
    '10',
    'The x86_64 build targets x86-64-v3 (AVX2): give the guest -cpu host (KVM) or -cpu max, not qemu64, or glibc stops with "CPU does not support x86-64-v3". ' +
      'AlmaLinux also publishes x86_64_v2 builds under /almalinux/10/cloud/x86_64_v2/.',
  ),
  rocky('9'),
  alpine('3.20', '3.20.10'),
  alpine('3.21', '3.21.7'),
  opensuseLeap('15.6'),
];

// ---- helpers ------------------------------------------------------------------------------------

/**
 * The name an entry's image is cached under: the entry's name for the host's architecture (as
 * before architectures were chosen), `NAME.ARCH` for another. Pure.
 */
export function catalogCacheName(entry: Pick<CatalogEntry, 'name'>, arch: string, host: string = defaultArch()): string {
  return arch === host ? entry.name : `${entry.name}.${arch}`;
}

/** What a download needs for one entry on one architecture. */
export interface CatalogSource {
  url: string;
  checksumUrl: string;
  checksumFormat: ChecksumFormat;
  algorithm: ChecksumAlgorithm;
  /** The name to look up in the checksum file. */
  fileName: string;
  signature: SignatureSource | undefined;
  firmware: Firmware;
  console: string;
}

export function catalogSource(entry: CatalogEntry, arch: string): CatalogSource {
  const image = entry.arches[arch as CatalogArch];
  if (!image) {
    const have = CATALOG_ARCHES.filter((a) => entry.arches[a]);
    throw kvmtestError('IMAGE_UNKNOWN', `${entry.name} has no ${arch} image in the catalog (it has ${have.join(', ') || 'none'}): pick another image or give a path to an ${arch} image`);
  }
  return {
    url: image.url,
    checksumUrl: image.checksum.url,
    checksumFormat: image.checksum.format,
    algorithm: image.checksum.algorithm,
    fileName: image.checksum.file ?? decodeURIComponent(posix.basename(new URL(image.url).pathname)),
    signature: image.checksum.signature,
    firmware: image.firmware ?? entry.firmware,
    console: image.console ?? entry.console,
  };
}
