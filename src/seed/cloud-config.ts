import { parse, stringify } from 'yaml';
import { kvmtestError } from '../errors.js';

export type CloudConfig = Record<string, unknown>;

export const AGENT_GUEST_PATH = '/run/kvmtest/agent.py';
export const AGENT_UNIT = 'kvmtest-agent';

/**
 * Shell that installs and starts the agent. It runs from bootcmd, the earliest hook cloud-init offers
 * (every boot, before write_files and long before runcmd), so the agent is up as soon as possible.
 * Under systemd a transient unit without default dependencies starts at once (a plain child would be
 * tied to cloud-init's unit; default dependencies would wait for sysinit.target, i.e. for cloud-init).
 */
export function agentBootScript(agentSource: string): string {
  const b64 = Buffer.from(agentSource, 'utf8').toString('base64');
  return [
    'set -e',
    `mkdir -p ${dirOf(AGENT_GUEST_PATH)}`,
    `echo '${b64}' | base64 -d > ${AGENT_GUEST_PATH}`,
    'py=$(command -v python3)',
    'if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then',
    `  systemd-run --no-block --unit=${AGENT_UNIT} --description='kvmtest guest agent' -p DefaultDependencies=no -p Restart=always -p RestartSec=1 -p OOMScoreAdjust=-900 "$py" ${AGENT_GUEST_PATH}`,
    'else',
    `  setsid "$py" ${AGENT_GUEST_PATH} </dev/null >>/run/kvmtest/agent.log 2>&1 &`,
    'fi',
  ].join('\n');
}

function dirOf(path: string): string {
  return path.slice(0, path.lastIndexOf('/'));
}

/** Accepts the user's cloud-config as an object or YAML text; throws CLOUD_CONFIG_INVALID when it is neither. */
export function normaliseCloudConfig(input: CloudConfig | string | undefined): CloudConfig {
  if (input === undefined) return {};
  let value: unknown = input;
  if (typeof input === 'string') {
    try {
      value = parse(input);
    } catch (error) {
      throw kvmtestError('CLOUD_CONFIG_INVALID', `the cloud-config is not valid YAML: ${(error as Error).message}`, { cause: error });
    }
    if (value === null || value === undefined) return {};
  }
  if (!isPlainObject(value)) {
    throw kvmtestError('CLOUD_CONFIG_INVALID', `Expected the "cloudConfig" option to be a mapping (object or YAML text of one), got ${Array.isArray(value) ? 'a list' : typeof value}`);
  }
  return value;
}

/**
 * Merges cloud-configs: mappings recursively, lists concatenated (ours first, so the agent starts
 * before the user's bootcmd), scalars taken from the later config.
 */
export function mergeCloudConfig(...configs: CloudConfig[]): CloudConfig {
  const out: CloudConfig = {};
  for (const config of configs) {
    for (const [key, value] of Object.entries(config)) {
      const prev = out[key];
      if (Array.isArray(prev) && Array.isArray(value)) out[key] = [...prev, ...value];
      else if (isPlainObject(prev) && isPlainObject(value)) out[key] = mergeCloudConfig(prev, value);
      else out[key] = value;
    }
  }
  return out;
}

export interface SeedContent {
  instanceId: string;
  hostname: string;
  agentSource: string;
  user?: CloudConfig;
}

/** The NoCloud files: meta-data and user-data, as text. Pure. */
export function renderSeed(content: SeedContent): { 'meta-data': string; 'user-data': string } {
  const ours: CloudConfig = { bootcmd: [['sh', '-c', agentBootScript(content.agentSource)]] };
  const userData = mergeCloudConfig(ours, content.user ?? {});
  return {
    'meta-data': stringify({ 'instance-id': content.instanceId, 'local-hostname': content.hostname }),
    'user-data': `#cloud-config\n${stringify(userData, { lineWidth: 0 })}`,
  };
}

function isPlainObject(value: unknown): value is CloudConfig {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
