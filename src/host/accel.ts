import { constants } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { arch } from 'node:os';
import { kvmtestError } from '../errors.js';

export type AccelRequest = 'auto' | 'kvm' | 'tcg';
export type Accel = 'kvm' | 'tcg';

/** What the host says about KVM; gathered by probeKvm(), judged by chooseAccel(). */
export interface KvmProbe {
  /** Node's arch name: x64, arm64, … */
  arch: string;
  /** Contents of /proc/cpuinfo, or undefined where it cannot be read. */
  cpuinfo: string | undefined;
  /** Result of opening /dev/kvm read-write: 'ok' or the errno code (ENOENT, EACCES, …). */
  device: string;
  /** Whether the kvm module is loaded (/sys/module/kvm exists), undefined when unknown. */
  moduleLoaded?: boolean;
}

export interface AccelChoice {
  accel: Accel;
  /** One line saying why, for logs and `kvmtest doctor`. */
  reason: string;
  /** Set when 'auto' fell back to TCG: the one-line warning to show. */
  warning?: string;
  /** Multiplier for default timeouts (TCG is 5–20× slower than KVM). */
  timeoutScale: number;
}

export const TCG_TIMEOUT_SCALE = 5;

/** Is KVM usable for standard guest kernels? A reason either way. Pure. */
export function judgeKvm(probe: KvmProbe): { usable: boolean; reason: string; fix?: string } {
  if (probe.device === 'ENOENT') {
    return {
      usable: false,
      reason: probe.moduleLoaded === false ? '/dev/kvm does not exist: the kvm module is not loaded' : '/dev/kvm does not exist',
      fix: 'enable virtualisation (VT-x/AMD-V) in the firmware and load the module: sudo modprobe kvm_intel (or kvm_amd); on a cloud VM choose an instance type with nested virtualisation',
    };
  }
  if (probe.device === 'EACCES' || probe.device === 'EPERM') {
    return {
      usable: false,
      reason: '/dev/kvm exists but this user cannot open it read-write',
      fix: 'add yourself to the kvm group (sudo usermod -aG kvm $USER, then log in again) or run as a user that can open /dev/kvm',
    };
  }
  if (probe.device !== 'ok') return { usable: false, reason: `/dev/kvm cannot be opened (${probe.device})`, fix: 'check that the kvm module is loaded and /dev/kvm is a character device' };
  if (probe.arch === 'x64' || probe.arch === 'ia32') {
    const flags = cpuFlags(probe.cpuinfo);
    if (!flags.has('vmx') && !flags.has('svm')) {
      return {
        usable: false,
        reason: '/dev/kvm opens, but the CPU advertises neither vmx nor svm: a paravirtual or nested KVM that cannot run standard guest kernels',
        fix: 'run on a host (or a VM with nested virtualisation) whose CPU exposes vmx or svm; until then TCG is used',
      };
    }
    return { usable: true, reason: `/dev/kvm opens read-write and the CPU advertises ${flags.has('vmx') ? 'vmx' : 'svm'}` };
  }
  return { usable: true, reason: '/dev/kvm opens read-write' };
}

/** Node's process.arch as QEMU and `uname -m` name it (x64 → x86_64, arm64 → aarch64); other names pass through. Pure. */
export function hostMachineArch(nodeArch: string = process.arch): string {
  return nodeArch === 'x64' ? 'x86_64' : nodeArch === 'arm64' ? 'aarch64' : nodeArch;
}

/**
 * Picks the accelerator for a request and a guest architecture (default the host's): KVM only runs
 * a guest of the host's own architecture, so any other is emulated (TCG), said once. 'kvm' where
 * KVM is unusable, or for a foreign guest, throws KVM_UNUSABLE with the fix. Pure.
 */
export function chooseAccel(request: AccelRequest, probe: KvmProbe, guestArch: string = hostMachineArch(probe.arch)): AccelChoice {
  if (request === 'tcg') return { accel: 'tcg', reason: 'TCG was requested', timeoutScale: TCG_TIMEOUT_SCALE };
  const hostArch = hostMachineArch(probe.arch);
  if (guestArch !== hostArch) {
    const reason = `${guestArch} guest on ${hostArch} host: KVM runs only the host's own architecture`;
    if (request === 'kvm')
      throw kvmtestError('KVM_UNUSABLE', `KVM was requested but cannot run this guest: ${reason}. Pass accel: 'auto' (or 'tcg') to emulate it, or run it on a host of that architecture.`);
    return { accel: 'tcg', reason, warning: `kvmtest: ${reason}; emulating it with TCG, expect boots 10-20x slower than KVM`, timeoutScale: TCG_TIMEOUT_SCALE };
  }
  const verdict = judgeKvm(probe);
  if (verdict.usable) return { accel: 'kvm', reason: verdict.reason, timeoutScale: 1 };
  if (request === 'kvm') {
    throw kvmtestError('KVM_UNUSABLE', `KVM was requested but is not usable: ${verdict.reason}. To fix: ${verdict.fix}. Or pass accel: 'auto' to fall back to TCG (much slower).`);
  }
  return {
    accel: 'tcg',
    reason: verdict.reason,
    warning: `kvmtest: KVM not usable (${verdict.reason}); using TCG software emulation, expect boots 10-20x slower`,
    timeoutScale: TCG_TIMEOUT_SCALE,
  };
}

export function cpuFlags(cpuinfo: string | undefined): Set<string> {
  const line = cpuinfo?.split('\n').find((l) => /^flags\s*:/.test(l));
  return new Set(line ? line.replace(/^flags\s*:\s*/, '').split(/\s+/) : []);
}

/** Reads the facts judgeKvm() needs from this host. */
export async function probeKvm(devicePath = '/dev/kvm'): Promise<KvmProbe> {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => undefined);
  let device = 'ok';
  try {
    const handle = await open(devicePath, constants.O_RDWR);
    await handle.close();
  } catch (error) {
    device = (error as NodeJS.ErrnoException).code ?? 'EIO';
  }
  const moduleLoaded = await readFile('/proc/modules', 'utf8').then(
    (m) => /^kvm(_\w+)? /m.test(m),
    () => undefined,
  );
  return { arch: arch(), cpuinfo, device, ...(moduleLoaded === undefined ? {} : { moduleLoaded }) };
}

let cached: Promise<KvmProbe> | undefined;
/** probeKvm() once per process. */
export function probeKvmOnce(): Promise<KvmProbe> {
  cached ??= probeKvm();
  return cached;
}
