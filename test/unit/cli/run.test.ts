import { describe, expect, it } from 'vitest';
import { parseCopySpec, parseEnv } from '../../../src/cli/run.js';

describe('options', () => {
  it('CLI copy specs split at the last colon; env pairs need a name', () => {
    expect(parseCopySpec('./a:b:/work', '--push')).toEqual({ source: './a:b', dest: '/work' });
    expect(() => parseCopySpec('nodest', '--push')).toThrow(/SRC:DEST/);
    expect(parseEnv(['A=1', 'B=x=y'])).toEqual({ A: '1', B: 'x=y' });
    expect(() => parseEnv(['=1'])).toThrow(/NAME=VALUE/);
  });
});
