import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { QmpClient, QmpEvent } from '../../../src/qemu/qmp.js';
import { saveState } from '../../../src/snapshot/migrate.js';

const work = mkdtempSync(join(tmpdir(), 'kvmtest-migrate-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** QEMU's side of a save: on migrate it streams `bytes` to the unix: URI, then emits the MIGRATION `end` event. */
function fakeQmp(bytes: Buffer, end: string) {
  const commands: string[] = [];
  const qmp = new EventEmitter<{ event: [QmpEvent] }>() as EventEmitter<{ event: [QmpEvent] }> & { execute: QmpClient['execute'] };
  qmp.execute = (async (command: string, args?: Record<string, unknown>) => {
    commands.push(command);
    if (command === 'migrate') {
      const socket = connect(String(args?.uri).replace(/^unix:/, ''));
      socket.end(bytes, () => qmp.emit('event', { event: 'MIGRATION', data: { status: end } }));
      return {};
    }
    if (command === 'query-migrate') return { status: end, ...(end === 'failed' ? { 'error-desc': 'boom' } : {}) };
    return {};
  }) as QmpClient['execute'];
  return { qmp: qmp as unknown as QmpClient, commands, listeners: () => qmp.listenerCount('event') };
}

const CAPS = [
  { capability: 'events', state: true },
  { capability: 'x-ignore-shared', state: true },
];

describe('saving the VM state', () => {
  it('stops, sets the capabilities, migrates to a host socket that writes the file (0600), and ends on the MIGRATION event', async () => {
    const dir = mkdtempSync(join(work, 'ok-'));
    const file = join(dir, 'state.bin');
    const { qmp, commands, listeners } = fakeQmp(Buffer.from('device state'), 'completed');
    await saveState(qmp, file, dir, CAPS);
    expect(commands).toEqual(['stop', 'migrate-set-capabilities', 'migrate', 'query-migrate']);
    expect(readFileSync(file, 'utf8')).toBe('device state');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(listeners()).toBe(0);
  });

  it("a failed save is SNAPSHOT_FAILED with QEMU's reason", async () => {
    const dir = mkdtempSync(join(work, 'fail-'));
    const { qmp, listeners } = fakeQmp(Buffer.from('x'), 'failed');
    await expect(saveState(qmp, join(dir, 'state.bin'), dir, CAPS)).rejects.toMatchObject({ code: 'SNAPSHOT_FAILED', message: expect.stringContaining('boom') });
    expect(listeners()).toBe(0);
  });
});
