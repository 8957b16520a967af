import type { Socket } from 'node:net';
import createDebug from 'debug';
import { AgentClient, LINK_LOSS_GRACE_MS } from '../agent/client.js';
import { type KvmtestError, kvmtestError } from '../errors.js';
import { connectWithRetry, QmpClient } from '../qemu/qmp.js';
import { loadIncoming } from './incoming.js';
import type { Machine } from './machine.js';

const debug = createDebug('kvmtest:machine');
/** How often hello is repeated while waiting: an agent restarted mid-boot may have eaten the first. */
const HELLO_REPEAT_MS = 5000;

export interface ReadyOptions {
  timeoutMs: number;
  /** Named in a timeout's message: 'tcg' says it is software emulation. */
  accel: string;
  signal?: AbortSignal;
  /** A restored clone's identity, sent with its hello (the answer says it was applied). */
  identity?: { hostname: string; machineId: string; entropy: Uint8Array };
  /** The machine already runs (lent by another process, which restored it): connect and say hello only. */
  attach?: boolean;
  /** How often hello is repeated; default 1 s for a restore, 5 s for a boot. */
  repeatMs?: number;
}

/**
 * Connects QMP and the agent link of a starting machine and waits for the agent's hello (after the
 * incoming state has loaded, for a restore), racing everything that means it will never come: the
 * machine's fatal event, the timeout, the abort signal. Every listener it adds is gone when it returns.
 */
export async function waitReady(machine: Machine, options: ReadyOptions): Promise<void> {
  const { spec } = machine;
  const what = spec.incomingState ? 'restore' : 'boot';
  const controller = new AbortController();
  const cleanups: (() => void)[] = [() => controller.abort()];
  const fatal = new Promise<never>((_, reject) => {
    const fail = (error: KvmtestError) => {
      error.consoleTail ??= machine.consoleTail();
      reject(error);
    };
    cleanups.push(machine.onFatal(fail));
    const timer = setTimeout(
      () =>
        fail(
          kvmtestError(
            'BOOT_TIMEOUT',
            `the guest agent did not say hello within ${Math.round(options.timeoutMs / 1000)} s (${options.accel}${options.accel === 'tcg' ? ', software emulation' : ''}); the console tail shows how far ${what} got`,
          ),
        ),
      options.timeoutMs,
    );
    cleanups.push(() => clearTimeout(timer));
    const signal = options.signal;
    if (signal) {
      const onAbort = () => fail(kvmtestError('ABORTED', `${what} was aborted`, { cause: signal.reason }));
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        cleanups.push(() => signal.removeEventListener('abort', onAbort));
      }
    }
  });
  fatal.catch(() => {});
  let socket: Socket | undefined;
  try {
    const link = (async () => {
      const monitor = QmpClient.connect(spec.qmpSocket, { signal: controller.signal }).then((client) => {
        machine.attachQmp(client);
        return client;
      });
      // a running machine (attach): QMP and the agent are connected side by side; a restore loads first
      if (options.attach) monitor.catch(() => {});
      else if (spec.incomingState) await loadIncoming(await monitor, spec, controller.signal);
      else await monitor;
      socket = await connectWithRetry(spec.agentSocket, controller.signal, 20);
      const agent = new AgentClient(socket, LINK_LOSS_GRACE_MS);
      const hello = await agent.handshake({
        signal: controller.signal,
        repeatMs: options.repeatMs ?? (spec.incomingState ? 1000 : HELLO_REPEAT_MS),
        ...(options.identity ? { identity: options.identity } : {}),
      });
      await monitor;
      debug('%s: hello %o', spec.name, hello);
      return { agent, hello };
    })().catch(async (error: unknown) => {
      // a socket that closes is usually QEMU going away: let its exit explain the failure
      await Promise.race([fatal, new Promise((r) => setTimeout(r, 1000))]).catch(() => {});
      throw error;
    });
    const { agent, hello } = await Promise.race([link, fatal]);
    machine.ready(agent, hello);
  } catch (error) {
    socket?.destroy();
    throw error;
  } finally {
    for (const cleanup of cleanups) cleanup();
  }
}
