/**
 * A push by disk or a mount whose agent never answers its copy-in (issue 22): the caller's signal or
 * the deadline ends it with ABORTED or TRANSFER_TIMEOUT, the agent is told `end`, and the disk is
 * detached. No QEMU: a fake QMP that records the hot-plug commands, a fake agent over a Duplex.
 */
import { EventEmitter } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { AgentClient } from '../../../src/agent/client.js';
import { encodeFrame, FrameDecoder } from '../../../src/agent/codec.js';
import { transferSignal } from '../../../src/agent/deadline.js';
import type { HostMessage } from '../../../src/agent/protocol.js';
import { mountImage } from '../../../src/attach/mount.js';
import { pushByDisk } from '../../../src/attach/push.js';
import type { Machine } from '../../../src/machine/machine.js';
import { useTempRoots } from '../fixtures/temp-roots.js';

type Log = string[];

/** QMP that accepts every command and reports a deleted device at once, as virtio-scsi does. */
class FakeQmp extends EventEmitter {
  constructor(private readonly log: Log) {
    super();
  }

  async execute(command: string, args: Record<string, unknown> = {}): Promise<unknown> {
    this.log.push(`qmp ${command}`);
    if (command === 'device_del') setImmediate(() => this.emit('event', { event: 'DEVICE_DELETED', data: { device: args.id } }));
    return {};
  }
}

/** An agent that says hello and never answers copy-in; `onEnd` says what it does when told to stop. */
class SilentAgent extends Duplex {
  private readonly decoder = new FrameDecoder<HostMessage>();

  constructor(
    private readonly log: Log,
    private readonly onEnd: 'nothing' | 'answer',
  ) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    for (const { header } of this.decoder.push(chunk)) {
      if (header.t === 'hello')
        this.reply({ t: 'hello', id: 0, nonce: header.nonce, protocol: 1, version: 'fake', os: { id: null, versionId: null, prettyName: null }, kernel: 'k', arch: 'x86_64', hostname: 'h', pid: 1 });
      else {
        this.log.push(`agent ${header.t} ${header.id}`);
        // the real agent unmounts, then answers the copy-in it was told to stop
        if (header.t === 'end' && this.onEnd === 'answer') this.reply({ t: 'error', id: header.id, code: 'EIO', message: 'copy-in aborted' });
      }
    }
    callback();
  }

  override _read(): void {}

  private reply(header: Record<string, unknown>): void {
    setImmediate(() => this.push(encodeFrame(header as never)));
  }
}

async function fakeMachine(dir: string, onEnd: 'nothing' | 'answer'): Promise<{ machine: Machine; log: Log }> {
  const log: Log = [];
  const agent = new AgentClient(new SilentAgent(log, onEnd));
  await agent.handshake();
  const machine = { name: 'fake', dir, state: 'running', views: new Map(), spec: {}, qmp: new FakeQmp(log), agent };
  return { machine: machine as unknown as Machine, log };
}

describe('a copy-in the agent never answers', () => {
  const roots = useTempRoots();

  it('a push by disk past its timeout: TRANSFER_TIMEOUT, the agent told `end`, the disk detached after a short grace', async () => {
    const dir = roots.makeRoot();
    const file = join(dir, 'blob');
    writeFileSync(file, 'x'.repeat(100));
    const { machine, log } = await fakeMachine(dir, 'nothing');
    const { signal, done } = transferSignal(`push of ${file}`, { timeout: 200 });
    const t0 = performance.now();
    try {
      await expect(pushByDisk(machine, file, '/dest', { kind: 'file', bytes: 100, entries: 1, mode: 0o644 }, undefined, { signal })).rejects.toMatchObject({
        code: 'TRANSFER_TIMEOUT',
        message: expect.stringMatching(/200 ms/),
      });
    } finally {
      done();
      machine.agent.close();
    }
    const ms = performance.now() - t0;
    expect(log).toEqual(['qmp blockdev-add', 'qmp device_add', 'agent copy-in 1', 'agent end 1', 'qmp device_del', 'qmp blockdev-del']);
    // the deadline, then at most the grace an agent gets to unmount
    expect(ms).toBeGreaterThanOrEqual(190);
    expect(ms).toBeLessThan(4000);
  });

  it('an agent that answers once told to stop is not waited for; a caller abort is ABORTED and the mount is not recorded', async () => {
    const dir = roots.makeRoot();
    const image = join(dir, 'view.img');
    writeFileSync(image, '');
    const { machine, log } = await fakeMachine(dir, 'answer');
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('the test is over')), 100);
    const t0 = performance.now();
    try {
      const error = await mountImage(machine, image, '/view', false, { signal: controller.signal }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'ABORTED', cause: { message: 'the test is over' } });
    } finally {
      machine.agent.close();
    }
    expect(performance.now() - t0).toBeLessThan(1500);
    expect(log).toEqual(['qmp blockdev-add', 'qmp device_add', 'agent copy-in 1', 'agent end 1', 'qmp device_del', 'qmp blockdev-del']);
    expect(machine.views.size).toBe(0);
  });

  it('a signal that fired already: nothing is attached', async () => {
    const dir = roots.makeRoot();
    const { machine, log } = await fakeMachine(dir, 'nothing');
    try {
      await expect(pushByDisk(machine, '/x', '/dest', { kind: 'file', bytes: 1, entries: 1, mode: 0o644 }, undefined, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ABORTED' });
      await expect(mountImage(machine, '/x.img', '/view', false, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ABORTED' });
    } finally {
      machine.agent.close();
    }
    expect(log).toEqual([]);
  });
});
