import { describe, expect, it } from 'vitest';
import { chooseReporters, parseVary } from '../../../src/cli/matrix.js';

describe('CLI helpers', () => {
  it('parses --vary values as numbers, booleans or text', () => {
    expect(parseVary('cpus=1,2')).toEqual(['cpus', [1, 2]]);
    expect(parseVary('memory=512M,2G')).toEqual(['memory', ['512M', '2G']]);
    expect(parseVary('debug=true,false')).toEqual(['debug', [true, false]]);
    expect(() => parseVary('cpus')).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });

  it('adds the github reporter under GitHub Actions and refuses unknown ones', () => {
    expect([...chooseReporters([], {})]).toEqual(['default']);
    expect([...chooseReporters(['junit'], { GITHUB_ACTIONS: 'true' })]).toEqual(['junit', 'github']);
    expect(() => chooseReporters(['xml'], {})).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect([...chooseReporters(['html'], {})]).toEqual(['html']);
  });
});
