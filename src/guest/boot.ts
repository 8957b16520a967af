import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { dir as tmpDir } from 'tmp-promise';
import createDebug from 'debug';
import { AgentClient } from '../agent/client.js';
import { BootError, KvmtestError } from '../errors.js';
import { chooseAccel, probeKvmOnce, type AccelChoice } from '../host/accel.js';
import { findTools } from '../host/tools.js';
import { ensureImage, type BuiltImage } from '../image/build.js';
import { createOverlay, inspectDisk } from '../image/disk.js';
import { isRecipeName } from '../image/recipes.js';
import { buildQemuArgs, type BootMethod } from '../qemu/argv.js';
import { QemuProcess } from '../qemu/process.js';
import { QmpClient, connectWithRetry } from '../qemu/qmp.js';
import { normaliseCloudConfig, renderSeed } from '../seed/cloud-config.js';
import { writeSeedIso } from '../seed/iso.js';
import { packageRoot } from '../util/package-root.js';
import { createProgress, silentProgress } from '../util/progress.js';
import { Guest } from './guest.js';
import { DEFAULT_BOOT_TIMEOUT_MS, resolveBootOptions, type BootOptions, type ResolvedBootOptions } from './options.js';
import { track } from './registry.js';

const debug = createDebug('kvmtest:boot');
const warned = new Set<string>();
/** How often hello is repeated while waiting: an agent restarted mid-boot may have eaten the first. */
const HELLO_REPEAT_MS = 5000;

/**
 * Boots a throwaway guest: a qcow2 overlay on the base image (never written), a NoCloud seed that
 * installs and starts the agent, QEMU with a QMP socket and a virtio-serial port. Resolves when the
 * agent says hello; rejects with BOOT_TIMEOUT, QEMU_EXITED, KERNEL_PANIC or NOT_BOOTABLE (with the
 * console tail) otherwise, leaving nothing behind.
 */
export async function boot(options: BootOptions): Promise<Guest> {
  const opts = resolveBootOptions(options);
  const started = performance.now();
  const tools = await findTools();
  const choice = chooseAccel(opts.accel, await probeKvmOnce());
  if (choice.warning && !warned.has(choice.warning)) {
    warned.add(choice.warning);
    process.stderr.write(`${choice.warning}\n`);
  }
  const progress = options.progress ? createProgress(`boot ${opts.image}`) : silentProgress;
  const built = isRecipeName(opts.image) ? await ensureImage(opts.image, { onLine: (line) => progress.update(line), ...(options.signal ? { signal: options.signal } : {}) }) : undefined;
  const base = await inspectDisk(tools.qemuImg, built?.disk ?? opts.image);
  const bootMethod = chooseBootMethod(opts, built);
  const agentSource = await readFile(join(packageRoot(), 'guest', 'agent.py'), 'utf8');
  const userConfig = normaliseCloudConfig(options.cloudConfig);

  const tmp = await tmpDir({ prefix: 'kvmtest', unsafeCleanup: true, mode: 0o700 });
  const id = randomBytes(4).toString('hex');
  const name = `kvmtest-${id}`;
  let qemu: QemuProcess | undefined;
  const untrack = track({ pid: () => qemu?.pid, dir: tmp.path });
  const cleanup = async () => {
    qemu?.kill('SIGKILL');
    await qemu?.exited;
    await qemu?.console.close();
    await tmp.cleanup();
    untrack();
  };

  try {
    progress.phase('preparing');
    const overlay = join(tmp.path, 'disk.qcow2');
    await createOverlay(tools.qemuImg, base, overlay);
    const seed = await writeSeedIso(
      tools.iso,
      tmp.path,
      renderSeed({ instanceId: `${name}-${Date.now()}`, hostname: opts.hostname ?? name, agentSource, user: userConfig }),
      join(tmp.path, 'seed.iso'),
    );
    const spec = {
      name,
      accel: choice.accel,
      cpus: opts.cpus,
      memoryMiB: opts.memoryMiB,
      disk: overlay,
      seed,
      boot: bootMethod,
      qmpSocket: join(tmp.path, 'qmp.sock'),
      agentSocket: join(tmp.path, 'agent.sock'),
      network: await withFreePorts(opts.network),
      ...(options.qemuArgs ? { extraArgs: options.qemuArgs } : {}),
    };
    progress.phase(`booting (${choice.accel}, ${opts.cpus} cpu, ${opts.memoryMiB}M)`);
    qemu = QemuProcess.start(tools.qemu, buildQemuArgs(spec), join(tmp.path, 'console.log'));
    const stopLines = qemu.console.onLine((line) => line.trim() && progress.update(line));
    const timeoutMs = opts.bootTimeoutMs ?? DEFAULT_BOOT_TIMEOUT_MS * choice.timeoutScale;
    try {
      const { qmp, agent, hello } = await waitForAgent(qemu, spec.qmpSocket, spec.agentSocket, timeoutMs, choice, options.signal);
      const bootMs = performance.now() - started;
      progress.done(`${hello.os.prettyName ?? hello.os.id} up, kernel ${hello.kernel}`);
      debug('%s up in %d ms: %o', name, bootMs, hello);
      return new Guest({
        info: { name, accel: choice.accel, cpus: opts.cpus, memoryMiB: opts.memoryMiB, dir: tmp.path, consolePath: qemu.console.path, agentSocket: spec.agentSocket, agent: hello, bootMs },
        qemu,
        qmp,
        agent,
        untrack,
      });
    } finally {
      stopLines();
    }
  } catch (error) {
    progress.fail(error instanceof Error ? error.message.split('\n')[0]! : String(error));
    if (error instanceof KvmtestError && qemu && error.consoleTail === undefined) error.consoleTail = qemu.console.lastLines();
    await cleanup();
    throw error;
  }
}

function chooseBootMethod(opts: ResolvedBootOptions, built: BuiltImage | undefined): BootMethod {
  if (opts.bootMode === 'kernel') {
    if (opts.kernel) return { kind: 'kernel', kernel: resolve(opts.kernel.kernel), ...(opts.kernel.initrd ? { initrd: resolve(opts.kernel.initrd) } : {}), ...(opts.kernel.append ? { append: opts.kernel.append } : {}) };
    if (!built) throw new KvmtestError('INVALID_OPTION', `boot: 'kernel' without a "kernel" path needs a named image (such as debian-12) whose kernel kvmtest knows; ${opts.image} is a path`);
    return { kind: 'kernel', kernel: built.kernel, initrd: built.initrd, append: built.append };
  }
  if (opts.firmware === 'uefi') return { kind: 'firmware', firmware: 'uefi', code: opts.uefi!.code, vars: opts.uefi!.vars };
  return { kind: 'firmware', firmware: 'bios' };
}

/** Fills in host ports left unset with free ones on 127.0.0.1. */
async function withFreePorts(network: ResolvedBootOptions['network']): Promise<false | { forwards: { host: number; guest: number }[] }> {
  if (network === false) return false;
  const forwards = [];
  for (const f of network.forwards) forwards.push({ guest: f.guest, host: f.host ?? (await freePort()) });
  return { forwards };
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/**
 * Waits for the agent's hello while watching for everything that means it will never come:
 * QEMU exiting, a kernel panic, a firmware with nothing to boot, the timeout, the caller's abort.
 */
async function waitForAgent(qemu: QemuProcess, qmpPath: string, agentPath: string, timeoutMs: number, choice: AccelChoice, signal?: AbortSignal) {
  const controller = new AbortController();
  const fatal = new Promise<never>((_, reject) => {
    const fail = (error: KvmtestError) => {
      error.consoleTail = qemu.console.lastLines();
      reject(error);
    };
    void qemu.exited.then((exit) =>
      fail(new BootError('QEMU_EXITED', `QEMU exited during boot (${exit.signal ?? `code ${exit.code}`})${exit.stderr ? `: ${exit.stderr}` : ''}`)),
    );
    qemu.console.onFatal((verdict) => {
      if (verdict.kind === 'panic') fail(new BootError('KERNEL_PANIC', `the guest kernel panicked during boot: ${verdict.line}`));
      else fail(new BootError('NOT_BOOTABLE', `the firmware found nothing to boot (${verdict.line.trim()}): is the image a bootable disk? For a bare root filesystem use direct kernel boot (kernel, initrd, append)`));
    });
    const timer = setTimeout(
      () => fail(new BootError('BOOT_TIMEOUT', `the guest agent did not say hello within ${Math.round(timeoutMs / 1000)} s (${choice.accel}${choice.accel === 'tcg' ? ', software emulation' : ''}); the console tail shows how far boot got`)),
      timeoutMs,
    );
    controller.signal.addEventListener('abort', () => clearTimeout(timer));
    signal?.addEventListener('abort', () => fail(new BootError('ABORTED', 'boot was aborted', { cause: signal.reason })), { once: true });
  });
  fatal.catch(() => {});
  let qmp: QmpClient | undefined;
  let socket: Socket | undefined;
  try {
    const link = (async () => {
      qmp = await QmpClient.connect(qmpPath, { signal: controller.signal });
      socket = await connectWithRetry(agentPath, controller.signal, 50);
      const agent = new AgentClient(socket);
      const hello = await agent.handshake({ signal: controller.signal, repeatMs: HELLO_REPEAT_MS });
      return { qmp, agent, hello };
    })();
    return await Promise.race([link, fatal]);
  } catch (error) {
    qmp?.close();
    socket?.destroy();
    throw error;
  } finally {
    controller.abort();
  }
}

