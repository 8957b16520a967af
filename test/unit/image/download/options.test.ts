import { Agent } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../../../src/errors.js';
import { downloadJob, policyFrom } from '../../../../src/image/download/options.js';

const dispatcher = new Agent();
afterAll(() => dispatcher.close());
const ok = { url: 'https://example.org/disk.qcow2', dest: '/tmp/kvmtest-x/disk.qcow2', dispatcher };

function refusal(run: () => unknown): { code: string; message: string; input: boolean } {
  try {
    run();
  } catch (error) {
    return { code: (error as { code: string }).code, message: (error as Error).message, input: error instanceof InputError };
  }
  throw new Error('accepted');
}

describe('download options: only INVALID_OPTION, naming the option', () => {
  it.each<[string, Record<string, unknown>, string]>([
    ['url', { url: 'ftp://example.org/x' }, 'Expected the "url" option to be an http(s) URL, got "ftp://example.org/x" (string)'],
    ['url', { url: 42 }, 'got 42 (number)'],
    ['url', { url: undefined }, 'got undefined (undefined)'],
    ['dest', { dest: '' }, 'Expected the "dest" option to be a non-empty path, got "" (string)'],
    ['partial', { partial: 7 }, 'Expected the "partial" option to be a non-empty path, got 7 (number)'],
    ['expected', { expected: null }, 'Expected the "expected" option to be a digest such as { algorithm: "sha256", hex }, got null (object)'],
    ['expected', { expected: 'abc' }, 'got "abc" (string)'],
    ['expected.algorithm', { expected: { algorithm: 'md5', hex: 'ab' } }, 'Expected the "expected.algorithm" option to be "sha256" or "sha512", got "md5" (string)'],
    ['expected.hex', { expected: { algorithm: 'sha256', hex: 'abc' } }, 'Expected the "expected.hex" option to be 64 hexadecimal digits, got "abc" (string)'],
    ['expected.hex', { expected: { algorithm: 'sha512', hex: 'z'.repeat(128) } }, '128 hexadecimal digits'],
    ['onProgress', { onProgress: 'log' }, 'Expected the "onProgress" option to be a function, got "log" (string)'],
    ['signal', { signal: {} }, 'Expected the "signal" option to be an AbortSignal, got {} (object)'],
    ['retries', { retries: -1 }, 'Expected the "retries" option to be a non-negative integer, got -1 (number)'],
    ['retries', { retries: 1.5 }, '"retries" option'],
    ['backoffMs', { backoffMs: '5' }, 'got "5" (string)'],
    ['idleTimeoutMs', { idleTimeoutMs: 0 }, 'Expected the "idleTimeoutMs" option to be an integer of at least 1, got 0 (number)'],
  ])('%s: %j', (path, patch, message) => {
    const refused = refusal(() => downloadJob({ ...ok, ...patch } as never));
    expect(refused).toMatchObject({ code: 'INVALID_OPTION', input: true });
    expect(refused.message).toContain(message);
    expect(refused.message).toContain(`"${path}" option`);
  });

  it('refuses options that are not an object with INVALID_OPTION, not a TypeError', () => {
    for (const bad of [undefined, null, 'https://example.org/x']) {
      expect(refusal(() => downloadJob(bad as never))).toMatchObject({ code: 'INVALID_OPTION', message: expect.stringContaining('"options" option') });
    }
  });

  it('fills the defaults', () => {
    expect(downloadJob(ok)).toMatchObject({
      retries: 4,
      backoffMs: 500,
      idleTimeoutMs: 60_000,
      partial: `${ok.dest}.partial`,
      sidecar: `${ok.dest}.partial.json`,
      algorithm: 'sha256',
      expected: undefined,
    });
    expect(policyFrom({ url: ok.url })).toEqual({ url: ok.url, retries: 4, backoffMs: 500, idleTimeoutMs: 60_000, signal: undefined });
  });
});
