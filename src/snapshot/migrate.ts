import type { QmpClient } from '../qemu/qmp.js';
import { KvmtestError } from '../errors.js';
import { shellQuote } from '../qemu/argv.js';
import createDebug from 'debug';

const debug = createDebug('kvmtest:snapshot');

interface MigrateInfo {
  status?: string;
  'error-desc'?: string;
  'total-time'?: number;
  ram?: { transferred?: number };
}

/**
 * Saves the stopped VM's whole state (RAM and devices) into a file through `migrate exec:`
 * (QEMU 7.2 has no file: URI) and waits for it to complete.
 */
export async function saveState(qmp: QmpClient, file: string, signal?: AbortSignal): Promise<MigrateInfo> {
  await qmp.execute('stop');
  await qmp.execute('migrate', { uri: `exec:cat > ${shellQuote(file)}` });
  for (;;) {
    signal?.throwIfAborted();
    const info = await qmp.execute<MigrateInfo>('query-migrate');
    if (info.status === 'completed') return info;
    if (info.status === 'failed' || info.status === 'cancelled') {
      throw new KvmtestError('SNAPSHOT_FAILED', `saving the VM state failed: ${info['error-desc'] ?? info.status}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until an incoming migration has loaded and the VM runs. */
export async function waitRunning(qmp: QmpClient, signal?: AbortSignal): Promise<void> {
  let last = '';
  for (;;) {
    signal?.throwIfAborted();
    const status = await qmp.execute<{ status: string }>('query-status');
    if (status.status !== last) debug('VM status %s', (last = status.status));
    if (status.status === 'running') return;
    if (status.status === 'postmigrate' || status.status === 'internal-error' || status.status === 'guest-panicked') {
      throw new KvmtestError('SNAPSHOT_FAILED', `the restored VM is ${status.status}`);
    }
    if (status.status === 'paused' || status.status === 'prelaunch') {
      const migrate = await qmp.execute<MigrateInfo>('query-migrate');
      if (migrate.status === 'failed') throw new KvmtestError('SNAPSHOT_FAILED', `restoring the VM state failed: ${migrate['error-desc'] ?? 'failed'}`);
      // the template was stopped before its save, so the loaded VM stays paused until told to go
      if (migrate.status === 'completed') await qmp.execute('cont');
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
