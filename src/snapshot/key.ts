import { createHash } from 'node:crypto';

/** Everything that shapes a warm snapshot: any change must make a new one. */
export interface SnapshotInputs {
  /** Content digest of the base image (and of its backing chain, if any). */
  baseDigest: string;
  qemuVersion: string;
  /** QEMU argv with the guest's private paths replaced by placeholders: machine, accel, CPUs, memory, devices, boot. */
  machineArgs: string[];
  /** Digest of the agent's source. */
  agentDigest: string;
  /** The user's cloud-config, normalised. */
  cloudConfig: unknown;
  /** Digests of a direct-boot kernel and initrd, when used. */
  kernelDigests?: string[];
}

/** Stable key of a snapshot: sha256 over a canonical rendering of its inputs. Pure. */
export function snapshotKey(inputs: SnapshotInputs): string {
  return createHash('sha256')
    .update(canonical({ v: 1, ...inputs }))
    .digest('hex')
    .slice(0, 24);
}

/** JSON with sorted keys, so equal inputs always give equal text. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
