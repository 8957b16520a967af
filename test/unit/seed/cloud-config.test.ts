import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { agentBootScript, mergeCloudConfig, normaliseCloudConfig, renderSeed } from '../../../src/seed/cloud-config.js';

const agentSource = 'print("agent")\n# quotes \' " and $HOME stay intact\n';

describe('cloud-init seed', () => {
  it('meta-data carries the unique instance-id and hostname', () => {
    const seed = renderSeed({ instanceId: 'kvmtest-abc-1', hostname: 'kvmtest-abc', agentSource });
    expect(parse(seed['meta-data'])).toEqual({ 'instance-id': 'kvmtest-abc-1', 'local-hostname': 'kvmtest-abc' });
  });

  it('user-data is #cloud-config whose bootcmd installs and starts the agent, byte-exact', () => {
    const userData = renderSeed({ instanceId: 'i', hostname: 'h', agentSource })['user-data'];
    expect(userData.startsWith('#cloud-config\n')).toBe(true);
    const config = parse(userData);
    const [cmd] = config.bootcmd;
    expect(cmd.slice(0, 2)).toEqual(['sh', '-c']);
    const b64 = /echo '([A-Za-z0-9+/=]+)' \| base64 -d/.exec(cmd[2])![1]!;
    expect(Buffer.from(b64, 'base64').toString('utf8')).toBe(agentSource);
    expect(cmd[2]).toMatch(/systemd-run --no-block --unit=kvmtest-agent .*-p DefaultDependencies=no/);
    expect(cmd[2]).toMatch(/setsid "\$py"/);
  });

  it("merges the user's cloud-config: lists appended after ours, mappings merged, scalars from the user", () => {
    const user = { bootcmd: ['echo user'], runcmd: [['touch', '/x']], packages: ['jq'], write_files: [{ path: '/etc/a', content: 'a' }], timezone: 'UTC' };
    const config = parse(renderSeed({ instanceId: 'i', hostname: 'h', agentSource, user })['user-data']);
    expect(config.bootcmd).toHaveLength(2);
    expect(config.bootcmd[1]).toBe('echo user');
    expect(config.runcmd).toEqual([['touch', '/x']]);
    expect(config.packages).toEqual(['jq']);
    expect(config.timezone).toBe('UTC');
    expect(mergeCloudConfig({ a: { b: 1, c: [1] } }, { a: { c: [2], d: 3 } })).toEqual({ a: { b: 1, c: [1, 2], d: 3 } });
  });

  it('takes YAML text and rejects what is not a mapping with CLOUD_CONFIG_INVALID', () => {
    expect(normaliseCloudConfig('runcmd:\n  - [ls]\n')).toEqual({ runcmd: [['ls']] });
    expect(normaliseCloudConfig('')).toEqual({});
    expect(() => normaliseCloudConfig('runcmd: [unclosed')).toThrowError(expect.objectContaining({ code: 'CLOUD_CONFIG_INVALID' }));
    expect(() => normaliseCloudConfig('- a\n- b\n')).toThrowError(expect.objectContaining({ code: 'CLOUD_CONFIG_INVALID', message: expect.stringMatching(/a list/) }));
  });

  it('never sets a password or enables SSH password login', () => {
    const userData = renderSeed({ instanceId: 'i', hostname: 'h', agentSource })['user-data'];
    expect(userData).not.toMatch(/passw|chpasswd|ssh_pwauth/i);
  });

  it('the boot script survives a shell round trip (no quote in base64)', () => {
    expect(agentBootScript("x'y")).not.toContain("x'y");
  });
});
