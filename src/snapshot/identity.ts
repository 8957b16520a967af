import { randomBytes } from 'node:crypto';
import { kvmtestError } from '../errors.js';
import type { AgentClient } from '../agent/client.js';

/**
 * Makes a restored clone its own machine: host entropy into the guest's RNG (forced reseed), the
 * host's clock, its own hostname and a fresh machine-id. Clones of one snapshot must not be copies.
 */
export async function sendIdentity(agent: AgentClient, hostname: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const channel = agent.open({
      onFrame: ({ header }) => {
        channel.close();
        if (header.t === 'done') resolve();
        else reject(kvmtestError('SNAPSHOT_FAILED', `the agent could not take its new identity: ${header.t === 'error' ? header.message : header.t}`));
      },
      onLinkError: reject,
    });
    channel.send({ t: 'identity', hostname, machineId: randomBytes(16).toString('hex'), timeMs: Date.now() }, randomBytes(64)).catch(reject);
  });
}
