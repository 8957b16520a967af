import { describe, expect, it } from 'vitest';
import { expandMatrix } from '../../../src/matrix/expand.js';
import { attemptDir, matrixKey } from '../../../src/matrix/run.js';

describe('cells', () => {
  it('keys a matrix by its cells and command, so only its own shards merge', () => {
    const cells = expandMatrix({ images: ['debian-11', 'debian-12'] });
    expect(matrixKey(cells, { run: ['npm', 'test'] })).toBe(matrixKey(expandMatrix({ images: ['debian-11', 'debian-12'] }), { run: ['npm', 'test'] }));
    expect(matrixKey(cells, { run: ['npm', 'test'] })).not.toBe(matrixKey(cells, { run: ['make', 'check'] }));
  });
});

describe('matrix: where attempts and collected paths land (pure)', () => {
  it('each attempt of a cell has its own directory', () => {
    expect(attemptDir('/out', 'debian-12/cpus=2', 1)).toBe('/out/cells/debian-12_cpus=2/attempt-1');
    expect(attemptDir('/out', 'debian-12/cpus=2', 2)).toBe('/out/cells/debian-12_cpus=2/attempt-2');
    expect(attemptDir('/out', '..', 1)).toBe('/out/cells/_/attempt-1');
  });
});
