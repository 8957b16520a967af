import createDebug from 'debug';
import { kvmtestError } from '../errors.js';
import { INCOMING_STATE_URI, type MachineSpec } from '../qemu/argv.js';
import type { QmpClient, QmpEvent } from '../qemu/qmp.js';

const debug = createDebug('kvmtest:machine');

/**
 * The migration capabilities a state is saved and loaded with: `events` (MIGRATION events, so both
 * ends wait on events, not polls), and `x-ignore-shared` when the RAM is in a file (the stream then
 * holds device state only). Both ends must agree; the loader must have them before the stream loads.
 */
export function migrationCapabilities(spec: Pick<MachineSpec, 'memoryFile'>): { capability: string; state: boolean }[] {
  return [{ capability: 'events', state: true }, ...(spec.memoryFile ? [{ capability: 'x-ignore-shared', state: true }] : [])];
}

/**
 * Loads a machine's incoming state (QEMU started with `-incoming defer` and the state as its fd 3):
 * capabilities, migrate-incoming, the MIGRATION event that says it completed, then `cont` (the
 * template was paused when saved). A failed load is SNAPSHOT_FAILED; QEMU 7.2 also exits on it.
 */
export async function loadIncoming(qmp: QmpClient, spec: Pick<MachineSpec, 'memoryFile'>, signal?: AbortSignal): Promise<void> {
  let onEvent: ((event: QmpEvent) => void) | undefined;
  let onAbort: (() => void) | undefined;
  // listening before migrate-incoming: QEMU sends the first events before its answer
  const loaded = new Promise<void>((resolve, reject) => {
    onEvent = (event) => {
      if (event.event !== 'MIGRATION') return;
      const status = String(event.data?.status);
      debug('incoming migration %s', status);
      if (status === 'completed') resolve();
      else if (status === 'failed' || status === 'cancelled') reject(kvmtestError('SNAPSHOT_FAILED', `restoring the VM state failed (${status})`));
    };
    qmp.on('event', onEvent);
    onAbort = () => reject(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  loaded.catch(() => {});
  try {
    signal?.throwIfAborted();
    await qmp.execute('migrate-set-capabilities', { capabilities: migrationCapabilities(spec) });
    await qmp.execute('migrate-incoming', { uri: INCOMING_STATE_URI });
    await loaded;
  } finally {
    if (onEvent) qmp.off('event', onEvent);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
  await qmp.execute('cont');
}
