/**
 * Clones of one warm snapshot must not share secrets: a guest that learns its own SSH host key or
 * systemd's random seed must learn nothing about another clone's. The template here holds an SSH
 * host key and a random seed (made by its cloud-config, fingerprints kept for comparison); two clones
 * restored from it must each have a new key of the same type, no seed file, their own machine-id and
 * random bytes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boot, type Guest } from '../../src/index.js';

// runs once, in the template (cloud-init's runcmd); the clones find its records in /root
const TEMPLATE_SCRIPT = [
  "ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key",
  'ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub > /root/template-ssh-fp',
  'test -s /var/lib/systemd/random-seed || head -c 512 /dev/urandom > /var/lib/systemd/random-seed',
  'sha256sum /var/lib/systemd/random-seed > /root/template-seed',
].join(' && ');
const settings = { image: 'debian-12', boot: 'kernel', snapshot: true, cloudConfig: { runcmd: [['sh', '-c', TEMPLATE_SCRIPT]] } } as const;

const clones: Guest[] = [];
beforeAll(async () => {
  clones.push(await boot(settings)); // makes the snapshot (one cold boot), then restores from it
  clones.push(await boot(settings));
});
afterAll(async () => {
  for (const vm of clones) await vm.dispose();
});

async function facts(vm: Guest) {
  const sh = async (script: string) => (await vm.exec(['sh', '-c', script])).stdout.trim();
  return {
    templateFingerprint: await sh('cat /root/template-ssh-fp'),
    templateSeed: await sh('cat /root/template-seed'),
    fingerprint: await sh('ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub'),
    keyFiles: (await sh('ls /etc/ssh | grep "^ssh_host_" || true')).split('\n').filter(Boolean),
    seed: await sh('test -e /var/lib/systemd/random-seed && sha256sum /var/lib/systemd/random-seed || echo absent'),
    machineId: await sh('cat /etc/machine-id'),
    random: await sh('head -c 32 /dev/urandom | od -An -tx1 | tr -d " \\n"'),
  };
}

describe('clones of one snapshot share no secrets', () => {
  it('each clone has its own SSH host key, no random seed from the template, its own machine-id and random bytes', async () => {
    const [a, b] = clones as [Guest, Guest];
    expect(b.info.snapshot).toBeDefined();
    if (a.info.snapshot) expect(a.info.snapshot).toBe(b.info.snapshot);
    console.log(`restored with new host keys: hello in ${b.info.bootMs.toFixed(0)} ms (${b.info.accel})`);
    const [fa, fb] = [await facts(a), await facts(b)];
    // the template really had a key and a seed
    expect(fa.templateFingerprint).toMatch(/^256 SHA256:\S+ .*\(ED25519\)$/);
    expect(fa.templateSeed).toMatch(/^[0-9a-f]{64} /);
    expect(fb.templateFingerprint).toBe(fa.templateFingerprint);
    for (const f of [fa, fb]) {
      expect(f.fingerprint).toMatch(/^256 SHA256:\S+ .*\(ED25519\)$/);
      expect(f.fingerprint.split(' ')[1]).not.toBe(fa.templateFingerprint.split(' ')[1]);
      expect(f.keyFiles).toEqual(['ssh_host_ed25519_key', 'ssh_host_ed25519_key.pub']);
      expect(f.seed).toBe('absent');
      expect(f.machineId).toMatch(/^[0-9a-f]{32}$/);
      expect(f.random).toMatch(/^[0-9a-f]{64}$/);
    }
    expect(fa.fingerprint.split(' ')[1]).not.toBe(fb.fingerprint.split(' ')[1]);
    expect(fa.machineId).not.toBe(fb.machineId);
    expect(fa.random).not.toBe(fb.random);
  });
});
