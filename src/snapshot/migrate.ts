import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { kvmtestError } from '../errors.js';
import type { QmpClient, QmpEvent } from '../qemu/qmp.js';

interface MigrateInfo {
  status?: string;
  'error-desc'?: string;
  'total-time'?: number;
  ram?: { transferred?: number };
}

/** Where a saved state's bytes go when not into a file as they come (a capsule compresses and counts them). */
export type StateSink = (stream: Readable) => Promise<void>;

/**
 * Saves the stopped VM's state into a file (0600), or hands the stream to a sink, and waits for it to complete: devices only when
 * the capabilities include x-ignore-shared and the RAM is a shared file (the template's), else RAM
 * too. QEMU streams it to a unix socket the host listens on in `dir` (private, 0700) and the host
 * writes the file: no `exec:` (QEMU 7.2 has no file: URI, and its sandbox denies spawning a shell).
 * The end is QEMU's MIGRATION event (the `events` capability), not a poll.
 */
export async function saveState(qmp: QmpClient, file: string | StateSink, dir: string, capabilities: { capability: string; state: boolean }[], signal?: AbortSignal): Promise<MigrateInfo> {
  const socketPath = join(dir, 'migrate.sock');
  const receiver = receiveOnce(socketPath, file);
  receiver.written.catch(() => {});
  let onEvent: ((event: QmpEvent) => void) | undefined;
  let onAbort: (() => void) | undefined;
  const ended = new Promise<string>((resolve, reject) => {
    onEvent = (event) => {
      const status = event.event === 'MIGRATION' ? String(event.data?.status) : '';
      if (status === 'completed' || status === 'failed' || status === 'cancelled') resolve(status);
    };
    qmp.on('event', onEvent);
    onAbort = () => reject(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  ended.catch(() => {});
  try {
    await receiver.listening;
    signal?.throwIfAborted();
    await qmp.execute('stop');
    await qmp.execute('migrate-set-capabilities', { capabilities });
    await qmp.execute('migrate', { uri: `unix:${socketPath}` });
    const status = await ended;
    const info = await qmp.execute<MigrateInfo>('query-migrate');
    if (status !== 'completed') throw kvmtestError('SNAPSHOT_FAILED', `saving the VM state failed: ${info['error-desc'] ?? status}`);
    await receiver.written;
    return info;
  } finally {
    if (onEvent) qmp.off('event', onEvent);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
    receiver.server.close();
    await rm(socketPath, { force: true });
  }
}

/** A unix server that writes its first connection's bytes to file (or a sink); later connections are refused. */
function receiveOnce(socketPath: string, file: string | StateSink): { server: Server; listening: Promise<void>; written: Promise<void> } {
  let settle: { resolve: () => void; reject: (e: unknown) => void };
  const written = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  const server = createServer((socket) => {
    server.close(); // one stream only
    (typeof file === 'string' ? pipeline(socket, createWriteStream(file, { mode: 0o600 })) : file(socket)).then(
      () => settle.resolve(),
      (e: unknown) => settle.reject(e),
    );
  });
  const listening = new Promise<void>((resolve, reject) => {
    server.once('error', (e) => {
      reject(e);
      settle.reject(e);
    });
    server.listen(socketPath, () => resolve());
  });
  return { server, listening, written };
}
