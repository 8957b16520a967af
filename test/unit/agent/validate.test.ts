import { describe, expect, it } from 'vitest';
import { checkAgentFrame, isSignalName } from '../../../src/agent/validate.js';

const hello = { t: 'hello', id: 0, nonce: 'ab', protocol: 1, version: '0.1.0', os: { id: 'debian', versionId: null, prettyName: 'Debian' }, kernel: '6.1', arch: 'x86_64', hostname: 'h', pid: 1 };

describe('frames from the agent are checked before use', () => {
  it.each([
    ['hello', hello],
    ['started', { t: 'started', id: 1, pid: 4242 }],
    ['exit with a code', { t: 'exit', id: 1, code: 255, signal: null }],
    ['exit by a signal', { t: 'exit', id: 1, code: null, signal: 'SIGKILL' }],
    ['exit by a real-time signal', { t: 'exit', id: 1, code: null, signal: 'SIG35' }],
    ['pull-start', { t: 'pull-start', id: 1, kind: 'dir' }],
    ['consumed', { t: 'consumed', id: 1, bytes: 262144 }],
    ['error', { t: 'error', id: 1, code: 'EBADTAR', message: 'x' }],
    ['log', { t: 'log', id: 0, level: 'warn', message: 'x' }],
    ['stdout', { t: 'stdout', id: 1 }],
    ['a type this host does not know', { t: 'future', id: 1, anything: [1] }],
  ])('accepts a sound %s', (_, frame) => {
    expect(checkAgentFrame(frame)).toBeUndefined();
  });

  it.each([
    ['exit code "x"', { t: 'exit', id: 1, code: 'x', signal: null }, /"code" is not an integer in 0\.\.255/],
    ['exit code -1', { t: 'exit', id: 1, code: -1, signal: null }, /"code"/],
    ['exit code 1.5', { t: 'exit', id: 1, code: 1.5, signal: null }, /"code"/],
    ['exit without code or signal', { t: 'exit', id: 1, code: null, signal: null }, /both null/],
    ['exit with a missing code', { t: 'exit', id: 1, signal: 'SIGTERM' }, /"code"/],
    ['signal SIGFOO', { t: 'exit', id: 1, code: null, signal: 'SIGFOO' }, /"signal" is not a known signal name: "SIGFOO"/],
    ['signal SIG65', { t: 'exit', id: 1, code: null, signal: 'SIG65' }, /"signal"/],
    ['signal "__proto__"', { t: 'exit', id: 1, code: null, signal: '__proto__' }, /"signal"/],
    ['pid -1', { t: 'started', id: 1, pid: -1 }, /"pid" is not an integer in 1\.\./],
    ['pid 0', { t: 'started', id: 1, pid: 0 }, /"pid"/],
    ['pid "1"', { t: 'started', id: 1, pid: '1' }, /"pid"/],
    ['pull-start kind', { t: 'pull-start', id: 1, kind: 'fifo' }, /"kind"/],
    ['consumed 0', { t: 'consumed', id: 1, bytes: 0 }, /"bytes"/],
    ['consumed NaN-ish', { t: 'consumed', id: 1, bytes: '1e9' }, /"bytes"/],
    ['error code', { t: 'error', id: 1, code: 'EPWNED', message: 'x' }, /agent error code/],
    ['error message', { t: 'error', id: 1, code: 'EIO', message: 'm'.repeat(9000) }, /"message" is 9000 characters long/],
    ['log level', { t: 'log', id: 0, level: 5, message: 'x' }, /"level"/],
    ['hello hostname of 1 MB', { ...hello, hostname: 'h'.repeat(1 << 20) }, /"hostname" is 1048576 characters long \(at most 255\)/],
    ['hello without a kernel', { ...hello, kernel: undefined }, /"kernel" is not a string: undefined/],
    ['hello pid', { ...hello, pid: -1 }, /"pid"/],
    ['hello identity other than applied', { ...hello, identity: 'maybe' }, /"identity" is not "applied"/],
    ['hello identityError of 1 MB', { ...hello, identityError: 'e'.repeat(1 << 20) }, /"identityError" is 1048576 characters long/],
    ['hello protocol', { ...hello, protocol: '1' }, /"protocol"/],
    ['hello os', { ...hello, os: null }, /"os" is not an object/],
    ['hello os.prettyName', { ...hello, os: { id: 'd', versionId: '1', prettyName: 'p'.repeat(300) } }, /os: "prettyName" is 300 characters/],
  ])('refuses %s', (_, frame, why) => {
    expect(checkAgentFrame(frame as never)).toMatch(why);
  });

  it('quotes a refused string briefly', () => {
    expect(checkAgentFrame({ t: 'started', id: 1, pid: 'x'.repeat(5000) } as never)!.length).toBeLessThan(120);
  });

  it('knows signal names', () => {
    expect(['SIGTERM', 'SIGKILL', 'SIGRTMIN', 'SIG64'].every(isSignalName)).toBe(true);
    expect(['SIGFOO', 'SIG0', 'toString', 'SIG'].some(isSignalName)).toBe(false);
  });
});
