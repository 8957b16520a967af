/**
 * The constants the host and the guest agent share have one source, src/protocol/shared.ts. The agent
 * runs alone in the guest as one file and keeps a copy in its "shared with the host" block: this
 * test loads guest/agent.py in python3 and fails when any value there differs from shared.ts.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAX_MESSAGE_CHARS } from '../../../src/agent/validate.js';
import * as shared from '../../../src/protocol/shared.js';

const root = join(__dirname, '..', '..', '..');
const agentPath = join(root, 'guest', 'agent.py');

/** The agent's values, read by Python from the module itself (not by matching its text). */
function agentValues(): Record<string, unknown> {
  const script = `
import importlib.util, json, re, sys
spec = importlib.util.spec_from_file_location("kvmtest_agent", sys.argv[1])
a = importlib.util.module_from_spec(spec)
spec.loader.exec_module(a)
source = open(sys.argv[1]).read()
used = set(re.findall(r'AgentError\\("([A-Z]+)"', source)) | set(re.findall(r'code="([A-Z]+)"', source)) | set(a.ERRNO_CODES.values()) | {"EIO", "EBADTAR"}
print(json.dumps({
  "VERSION": a.VERSION, "PROTOCOL": a.PROTOCOL, "PORT_NAME": a.PORT_NAME, "MAGIC": a.MAGIC.decode("latin1"),
  "PRELUDE": a.PREFIX.size, "MAX_HEADER": a.MAX_HEADER, "MAX_BODY": a.MAX_BODY, "CHUNK": a.CHUNK,
  "CREDIT_WINDOW": a.CREDIT_WINDOW, "DEFAULT_PATH": a.DEFAULT_PATH, "MAX_MESSAGE": a.MAX_MESSAGE,
  "ERROR_CODES": list(a.ERROR_CODES), "REQUESTS": list(a.REQUESTS), "USED_CODES": sorted(used),
}))
`;
  return JSON.parse(execFileSync('python3', ['-c', script, agentPath], { encoding: 'utf8' })) as Record<string, unknown>;
}

describe('the constants shared with the guest agent', () => {
  const agent = agentValues();

  it('guest/agent.py holds the values of src/protocol/shared.ts', () => {
    expect(agent).toMatchObject({
      PROTOCOL: shared.PROTOCOL_VERSION,
      PORT_NAME: shared.PORT_NAME,
      MAGIC: shared.MAGIC_TEXT,
      PRELUDE: shared.PRELUDE_BYTES,
      MAX_HEADER: shared.MAX_HEADER_BYTES,
      MAX_BODY: shared.MAX_BODY_BYTES,
      CHUNK: shared.CHUNK_BYTES,
      CREDIT_WINDOW: shared.CREDIT_WINDOW_BYTES,
      DEFAULT_PATH: shared.DEFAULT_PATH,
      MAX_MESSAGE: shared.AGENT_MESSAGE_CHARS,
      ERROR_CODES: [...shared.AGENT_ERROR_CODES],
      REQUESTS: [...shared.HOST_FRAME_TYPES],
    });
  });

  it('every error code the agent can send is one the host accepts', () => {
    expect(shared.AGENT_ERROR_CODES).toEqual(expect.arrayContaining(agent.USED_CODES as string[]));
  });

  it('the agent reports the package version in its hello', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    expect(agent.VERSION).toBe(pkg.version);
  });

  it('the host accepts the longest message the agent sends', () => {
    expect(MAX_MESSAGE_CHARS).toBeGreaterThanOrEqual(shared.AGENT_MESSAGE_CHARS);
    expect(shared.CHUNK_BYTES).toBeLessThan(shared.MAX_BODY_BYTES);
  });
});
