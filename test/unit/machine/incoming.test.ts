import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { loadIncoming, migrationCapabilities } from '../../../src/machine/incoming.js';
import type { QmpClient, QmpEvent } from '../../../src/qemu/qmp.js';

/** A QMP stand-in: records commands; on migrate-incoming it emits the given MIGRATION statuses (before answering, as QEMU does). */
function fakeQmp(statuses: string[]) {
  const commands: { command: string; args?: Record<string, unknown> }[] = [];
  const qmp = new EventEmitter<{ event: [QmpEvent] }>() as EventEmitter<{ event: [QmpEvent] }> & { execute: QmpClient['execute'] };
  qmp.execute = (async (command: string, args?: Record<string, unknown>) => {
    commands.push({ command, ...(args ? { args } : {}) });
    if (command === 'migrate-incoming') {
      for (const status of statuses) qmp.emit('event', { event: 'MIGRATION', data: { status } });
    }
    return {};
  }) as QmpClient['execute'];
  return { qmp: qmp as unknown as QmpClient, commands, listeners: () => qmp.listenerCount('event') };
}

describe('loading an incoming state', () => {
  it('sets events and x-ignore-shared before the stream loads, loads fd:3, waits for the completed event, then cont', async () => {
    const { qmp, commands, listeners } = fakeQmp(['setup', 'active', 'completed']);
    await loadIncoming(qmp, { memoryFile: { path: '/r', shared: false } });
    expect(commands).toEqual([
      {
        command: 'migrate-set-capabilities',
        args: {
          capabilities: [
            { capability: 'events', state: true },
            { capability: 'x-ignore-shared', state: true },
          ],
        },
      },
      { command: 'migrate-incoming', args: { uri: 'fd:3' } },
      { command: 'cont' },
    ]);
    expect(listeners()).toBe(0);
  });

  it('a failed load is SNAPSHOT_FAILED and the VM is not continued', async () => {
    const { qmp, commands, listeners } = fakeQmp(['setup', 'active', 'failed']);
    await expect(loadIncoming(qmp, { memoryFile: { path: '/r', shared: false } })).rejects.toMatchObject({ code: 'SNAPSHOT_FAILED' });
    expect(commands.map((c) => c.command)).not.toContain('cont');
    expect(listeners()).toBe(0);
  });

  it('an abort ends the wait and removes its listener', async () => {
    const { qmp, listeners } = fakeQmp(['setup', 'active']);
    const controller = new AbortController();
    const loading = loadIncoming(qmp, {}, controller.signal);
    setTimeout(() => controller.abort(new Error('stop')), 10);
    await expect(loading).rejects.toThrow('stop');
    expect(listeners()).toBe(0);
  });

  it('RAM in a file means x-ignore-shared on both ends; anonymous RAM keeps the whole-RAM stream', () => {
    expect(migrationCapabilities({ memoryFile: { path: '/r', shared: true } }).map((c) => c.capability)).toEqual(['events', 'x-ignore-shared']);
    expect(migrationCapabilities({}).map((c) => c.capability)).toEqual(['events']);
  });
});
