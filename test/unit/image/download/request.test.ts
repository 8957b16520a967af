import { describe, expect, it } from 'vitest';
import { nextHop } from '../../../../src/image/download/request.js';

// the redirect rule alone, hop by hop; download.test.ts follows real redirects from an https server
describe('redirects from https', () => {
  it('judges each hop: https → https and http → either are followed; other schemes never', () => {
    expect(nextHop('https://a/x', 'https://a/x', '/y')).toBe('https://a/y');
    expect(nextHop('http://a/x', 'http://a/x', 'https://b/y')).toBe('https://b/y');
    expect(nextHop('http://a/x', 'http://a/x', 'http://b/y')).toBe('http://b/y');
    expect(() => nextHop('https://a/x', 'https://a/x', 'http://a/y')).toThrow(expect.objectContaining({ code: 'DOWNLOAD_INSECURE' }));
    expect(() => nextHop('http://a/x', 'http://a/x', 'file:///etc/passwd')).toThrow(expect.objectContaining({ code: 'DOWNLOAD_INSECURE' }));
  });
});
