import { closeSync, openSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import createDebug from 'debug';
import { AgentClient, LINK_LOSS_GRACE_MS } from '../agent/client.js';
import type { HelloAnswer } from '../agent/protocol.js';
import { kvmtestError, KvmtestError } from '../errors.js';
import { buildQemuArgs, type MachineSpec } from '../qemu/argv.js';
import { QemuProcess } from '../qemu/process.js';
import { QmpClient, connectWithRetry } from '../qemu/qmp.js';
import { waitRunning } from '../snapshot/migrate.js';
import type { Prepared } from './prepare.js';

const debug = createDebug('kvmtest:launch');
/** How often hello is repeated while waiting: an agent restarted mid-boot may have eaten the first. */
const HELLO_REPEAT_MS = 5000;

export interface Launched {
  qemu: QemuProcess;
  qmp: QmpClient;
  agent: AgentClient;
  hello: HelloAnswer;
}

/**
 * Starts QEMU for a spec (booting, or restoring when spec.incomingState is set) and waits for the
 * agent's hello, racing everything that means it will never come. On failure QEMU is killed; the
 * caller owns the directory.
 */
export async function launch(prep: Prepared, spec: MachineSpec, dir: string, timeoutMs: number, onStart: (qemu: QemuProcess) => void): Promise<Launched> {
  const qemu = startQemu(prep, spec, dir);
  onStart(qemu);
  const stopLines = qemu.console.onLine((line) => line.trim() && prep.progress.update(line));
  try {
    return await waitForAgent(qemu, spec, timeoutMs, prep, prep.options.signal);
  } catch (error) {
    if (error instanceof KvmtestError && error.consoleTail === undefined) error.consoleTail = qemu.console.lastLines();
    await qemu.destroy();
    throw error;
  } finally {
    stopLines();
  }
}

/** Starts QEMU; a restore gets the state file opened here as its fd 3 (QEMU reads it, forking nothing). */
function startQemu(prep: Prepared, spec: MachineSpec, dir: string): QemuProcess {
  const state = spec.incomingState === undefined ? undefined : openSync(spec.incomingState, 'r');
  try {
    return QemuProcess.start(prep.tools.qemu, buildQemuArgs(spec), join(dir, 'console.log'), prep.tools.setpriv, state);
  } finally {
    // the child holds its own copy
    if (state !== undefined) closeSync(state);
  }
}

async function waitForAgent(qemu: QemuProcess, spec: MachineSpec, timeoutMs: number, prep: Prepared, signal?: AbortSignal): Promise<Launched> {
  const controller = new AbortController();
  const what = spec.incomingState ? 'restore' : 'boot';
  const fatal = new Promise<never>((_, reject) => {
    const fail = (error: KvmtestError) => {
      error.consoleTail = qemu.console.lastLines();
      reject(error);
    };
    void qemu.exited.then((exit) =>
      fail(kvmtestError('QEMU_EXITED', `QEMU exited during ${what} (${exit.signal ?? `code ${exit.code}`})${exit.stderr ? `: ${exit.stderr}` : ''}`)),
    );
    qemu.console.onFatal((verdict) => {
      if (verdict.kind === 'panic') fail(kvmtestError('KERNEL_PANIC', `the guest kernel panicked during ${what}: ${verdict.line}`));
      else if (verdict.kind === 'no-cloud-init') fail(kvmtestError('NO_CLOUD_INIT', `the guest booted to a login prompt (${verdict.line.trim()}) without running cloud-init: kvmtest starts its agent through cloud-init, so the image needs it (cloud images have it; for your own image install the cloud-init package)`));
      else fail(kvmtestError('NOT_BOOTABLE', `the firmware found nothing to boot (${verdict.line.trim()}): is the image a bootable disk? For a bare root filesystem use direct kernel boot (kernel, initrd, append)`));
    });
    const timer = setTimeout(
      () => fail(kvmtestError('BOOT_TIMEOUT', `the guest agent did not say hello within ${Math.round(timeoutMs / 1000)} s (${prep.choice.accel}${prep.choice.accel === 'tcg' ? ', software emulation' : ''}); the console tail shows how far ${what} got`)),
      timeoutMs,
    );
    controller.signal.addEventListener('abort', () => clearTimeout(timer));
    signal?.addEventListener('abort', () => fail(kvmtestError('ABORTED', `${what} was aborted`, { cause: signal.reason })), { once: true });
  });
  fatal.catch(() => {});
  let qmp: QmpClient | undefined;
  let socket: Socket | undefined;
  try {
    const link = (async () => {
      qmp = await QmpClient.connect(spec.qmpSocket, { signal: controller.signal });
      if (spec.incomingState) await waitRunning(qmp, controller.signal);
      socket = await connectWithRetry(spec.agentSocket, controller.signal, 20);
      const agent = new AgentClient(socket, LINK_LOSS_GRACE_MS);
      const hello = await agent.handshake({ signal: controller.signal, repeatMs: spec.incomingState ? 1000 : HELLO_REPEAT_MS });
      debug('%s: hello %o', spec.name, hello);
      return { qemu, qmp, agent, hello };
    })().catch(async (error: unknown) => {
      // a socket that closes is usually QEMU going away: let its exit explain the failure
      await Promise.race([fatal, new Promise((r) => setTimeout(r, 1000))]);
      throw error;
    });
    return await Promise.race([link, fatal]);
  } catch (error) {
    qmp?.close();
    socket?.destroy();
    throw error;
  } finally {
    controller.abort();
  }
}
