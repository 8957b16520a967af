import type { Server } from 'node:net';

/**
 * Binds a unix socket with umask 077, so it is 0600 from its first instant: a chmod after listen would
 * leave a moment when another user could connect. The bind happens inside listen(), synchronously.
 */
export function listenPrivately(server: Server, path: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const umask = process.umask(0o077);
    try {
      server.listen(path, () => resolve());
    } finally {
      process.umask(umask);
    }
  });
}
