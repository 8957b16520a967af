/**
 * Pure rules for a pulled archive's names and modes: where a member may go, which mode it keeps.
 * No file system here: unit-tested on their own.
 */

/** A member's path as components under the destination, or why the archive is refused. */
export type MemberPath = { ok: true; parts: string[] } | { ok: false; reason: string };

/** Longest member name or link target we accept, in bytes (Linux PATH_MAX less the terminator). */
export const MAX_NAME_BYTES = 4095;

/**
 * Components of a member name relative to the destination: `./a//b/` → ['a', 'b'], `.` → [].
 * Absolute names, `..` components and NUL bytes have no safe place: the archive is refused for them.
 */
export function memberPath(name: string): MemberPath {
  if (name.includes('\0')) return { ok: false, reason: `member name with a NUL byte: ${JSON.stringify(name)}` };
  if (name.startsWith('/')) return { ok: false, reason: `absolute member name ${name}` };
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) return { ok: false, reason: `member name longer than ${MAX_NAME_BYTES} bytes` };
  const parts = name.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) return { ok: false, reason: `member name with a .. component: ${name}` };
  return { ok: true, parts };
}

/**
 * The mode a pulled member gets: never setuid, setgid or sticky, never group- or world-writable.
 * Directories always keep the owner's rwx, so that their contents can be written and removed.
 */
export function clampMode(mode: number | undefined, kind: 'file' | 'dir'): number {
  const given = mode ?? (kind === 'dir' ? 0o755 : 0o644);
  if (kind === 'dir') return (given & 0o755) | 0o700;
  // read and execute bits as given, write for the owner only
  return given & 0o755;
}

/** What a tar member type becomes on the host: made, or dropped with this reason. */
export type MemberKind = 'file' | 'dir' | 'symlink' | 'hardlink' | { drop: string };

/** node-tar's type names → what we make of them. Special files are never made on the host. */
export function memberKind(type: string): MemberKind {
  switch (type) {
    case 'File':
    case 'OldFile':
    case 'ContiguousFile':
      return 'file';
    case 'Directory':
      return 'dir';
    case 'SymbolicLink':
      return 'symlink';
    case 'Link':
      return 'hardlink';
    case 'CharacterDevice':
    case 'BlockDevice':
      return { drop: 'device node' };
    case 'FIFO':
      return { drop: 'fifo' };
    default:
      return { drop: `unsupported member type ${type}` };
  }
}
