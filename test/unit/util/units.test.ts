import { describe, expect, it } from 'vitest';
import { parseDuration, parseMemoryMiB } from '../../../src/util/units.js';

describe('options', () => {
  it('parses durations and sizes', () => {
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration(250)).toBe(250);
    expect(parseMemoryMiB('1G')).toBe(1024);
    expect(parseMemoryMiB('512M')).toBe(512);
    expect(parseMemoryMiB('2GiB')).toBe(2048);
    expect(parseMemoryMiB(768)).toBe(768);
  });
});
