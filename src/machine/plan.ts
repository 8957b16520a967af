import { constants } from 'node:fs';
import { chmod, copyFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { AccelChoice } from '../host/accel.js';
import type { HostTools } from '../host/tools.js';
import type { BackingLink, DiskInfo } from '../image/disk.js';
import type { MachineArch } from '../qemu/arch.js';
import type { BootMethod, MachineSpec } from '../qemu/argv.js';
import type { CloudConfig } from '../seed/cloud-config.js';
import type { Progress } from '../util/progress.js';

export const DEFAULT_BOOT_TIMEOUT_MS = 120_000;
/** A restore takes a second or two: one that hangs is broken, not slow. */
export const RESTORE_TIMEOUT_MS = 20_000;

/** The settled options a machine is started with (guest/options.ts resolves them from user input). */
export interface MachineOptions {
  /** The guest's architecture: picks the QEMU binary, machine, CPU, console and firmware. */
  arch: MachineArch;
  memoryMiB: number;
  cpus: number;
  /** A named CPU model (see MachineSpec.cpuModel); default the accelerator's own. */
  cpu?: string;
  /** A versioned machine type (a capsule's); default the architecture's alias. */
  machineType?: string;
  /** Read-only disks on the attach controller from the start (a capsule's mounted views). */
  attached?: { target: number; path: string; format: 'raw' | 'qcow2' }[];
  /** The RAM in a named anonymous backend (a capsule saved from a guest whose RAM was a file); see MachineSpec.ramBackend. */
  ramBackend?: boolean;
  hostname?: string;
  network: false | { forwards: { host?: number; guest: number }[]; outbound?: false };
  bootTimeoutMs?: number;
  /** The user's cloud-config, normalised to a mapping ({} when none). */
  cloudConfig: CloudConfig;
  /** Extra QEMU arguments, appended verbatim. */
  qemuArgs?: string[];
  signal?: AbortSignal;
}

/** Everything settled before a QEMU starts: options, tools, accelerator, base image, boot method. */
export interface MachinePlan {
  opts: MachineOptions;
  tools: HostTools;
  choice: AccelChoice;
  base: DiskInfo;
  bootMethod: BootMethod;
  agentSource: string;
  progress: Progress;
  /** QEMU runs under its seccomp sandbox (false where this build or kernel cannot: kvmtest doctor says). */
  sandbox: boolean;
}

/** How long a start may take to the agent's hello: the user's bootTimeout, else a default scaled for TCG. */
export function startTimeoutMs(plan: MachinePlan, restoring: boolean): number {
  return plan.opts.bootTimeoutMs ?? (restoring ? RESTORE_TIMEOUT_MS : DEFAULT_BOOT_TIMEOUT_MS) * plan.choice.timeoutScale;
}

/** Where a machine's own copy of the UEFI vars lives: firmware writes it, and machines must not share it. */
export function uefiVarsPath(dir: string): string {
  return join(dir, 'uefi-vars.fd');
}

/** Copies the user's UEFI vars into the machine's private dir (0600), when it boots with UEFI. */
export async function copyUefiVars(plan: Pick<MachinePlan, 'bootMethod'>, dir: string): Promise<void> {
  const boot = plan.bootMethod;
  if (boot.kind !== 'firmware' || boot.firmware !== 'uefi') return;
  const target = uefiVarsPath(dir);
  await copyFile(boot.vars, target, constants.COPYFILE_EXCL);
  await chmod(target, 0o600);
}

/** The machine spec for one machine: its own disk (on the backing chain given, nearest first), seed, sockets and UEFI vars in dir. */
export function machineSpec(
  plan: Pick<MachinePlan, 'bootMethod' | 'choice' | 'opts' | 'sandbox'>,
  name: string,
  dir: string,
  disk: string,
  backing: BackingLink[],
  seed: string,
  network: MachineSpec['network'],
): MachineSpec {
  const boot = plan.bootMethod;
  return {
    name,
    arch: plan.opts.arch,
    accel: plan.choice.accel,
    ...(plan.opts.cpu ? { cpuModel: plan.opts.cpu } : {}),
    ...(plan.opts.machineType ? { machineType: plan.opts.machineType } : {}),
    ...(plan.opts.ramBackend ? { ramBackend: true } : {}),
    ...(plan.opts.attached?.length ? { attached: plan.opts.attached } : {}),
    cpus: plan.opts.cpus,
    memoryMiB: plan.opts.memoryMiB,
    disk,
    backing,
    seed,
    boot: boot.kind === 'firmware' && boot.firmware === 'uefi' ? { ...boot, vars: uefiVarsPath(dir) } : boot,
    qmpSocket: join(dir, 'qmp.sock'),
    agentSocket: join(dir, 'agent.sock'),
    network,
    ...(plan.sandbox ? { sandbox: true } : {}),
    ...(plan.opts.qemuArgs ? { extraArgs: plan.opts.qemuArgs } : {}),
  };
}

/** Fills in host ports left unset with free ones on 127.0.0.1. */
export async function withFreePorts(network: MachineOptions['network']): Promise<MachineSpec['network']> {
  if (network === false) return false;
  const forwards = [];
  for (const f of network.forwards) forwards.push({ guest: f.guest, host: f.host ?? (await freePort()) });
  return { forwards, ...(network.outbound === false ? { outbound: false } : {}) };
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === 'object' && address ? address.port : 0));
    });
  });
}
