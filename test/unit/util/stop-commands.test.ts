import { describe, expect, it } from 'vitest';
import { commandFence, fenced } from '../../../src/util/stop-commands.js';

describe('stop-commands fence', () => {
  it('stops before the first chunk, resumes at the end on a line of its own, with a fresh random token', () => {
    const fence = commandFence();
    expect(fence.stop).toMatch(/^::stop-commands::kvmtest-[0-9a-f]{32}\n$/);
    expect(commandFence().stop).not.toBe(fence.stop);
    const chunks: (string | Uint8Array)[] = [];
    const out = fenced<Buffer>((c) => chunks.push(c), fence);
    out.end();
    expect(chunks).toEqual([]);
    out.write(Buffer.from('::error::pwned\nno newline'));
    out.end();
    expect(chunks.map((c) => Buffer.from(c).toString())).toEqual([fence.stop, '::error::pwned\nno newline', `\n${fence.resume}`]);
  });
});
