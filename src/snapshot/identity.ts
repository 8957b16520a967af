import { randomBytes } from 'node:crypto';
import type { AgentClient } from '../agent/client.js';

/**
 * Makes a restored clone its own machine: host entropy into the guest's RNG (forced reseed), the
 * host's clock, its own hostname and a fresh machine-id. Clones of one snapshot must not be copies.
 * An agent error is SNAPSHOT_FAILED (see agent/answer-error.ts).
 */
export async function sendIdentity(agent: AgentClient, hostname: string): Promise<void> {
  await agent.request('identity', { hostname, machineId: randomBytes(16).toString('hex'), timeMs: Date.now() }, { body: randomBytes(64) });
}
