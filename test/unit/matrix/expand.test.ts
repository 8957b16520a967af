import { describe, expect, it } from 'vitest';
import { cellId, expandMatrix } from '../../../src/matrix/expand.js';

describe('expandMatrix', () => {
  it('crosses images with axes in a stable, readable order', () => {
    const cells = expandMatrix({ images: ['debian-11', 'debian-12'], vary: { cpus: [1, 2], memory: ['512M'] } });
    expect(cells.map((c) => c.id)).toEqual(['debian-11/cpus=1/memory=512M', 'debian-11/cpus=2/memory=512M', 'debian-12/cpus=1/memory=512M', 'debian-12/cpus=2/memory=512M']);
    expect(cells[1]).toEqual({ id: 'debian-11/cpus=2/memory=512M', image: 'debian-11', axes: { cpus: 2, memory: '512M' } });
  });

  it('names a one-axis matrix by image alone, and a path by its file name', () => {
    expect(expandMatrix({ images: ['debian-13', '/var/img/alma-9.qcow2'] }).map((c) => c.id)).toEqual(['debian-13', 'alma-9.qcow2']);
    expect(cellId('debian-12', { cpus: 2, big: true })).toBe('debian-12/cpus=2/big=true');
  });

  it('drops excluded cells and adds included ones once', () => {
    const cells = expandMatrix({
      images: ['debian-11', 'debian-12'],
      vary: { cpus: [1, 2] },
      exclude: [
        { image: 'debian-11', cpus: 2 },
        { cpus: 1, image: 'debian-12' },
      ],
      include: [
        { image: 'debian-13', cpus: 4 },
        { image: 'debian-11', cpus: 1 },
      ],
    });
    expect(cells.map((c) => c.id)).toEqual(['debian-11/cpus=1', 'debian-12/cpus=2', 'debian-13/cpus=4']);
  });

  it('rejects bad matrices with INVALID_OPTION', () => {
    for (const bad of [
      { images: [] },
      { images: ['debian-12', ''] },
      { images: ['debian-12'], vary: { cpus: [] } },
      { images: ['debian-12'], vary: { 'no spaces': [1] } },
      { images: ['debian-12'], vary: { image: ['x'] } },
      { images: ['debian-12'], vary: { cpus: [{}] } },
      { images: ['debian-12'], exclude: [{ image: 'debian-12' }] },
      { images: ['debian-12'], include: [{ cpus: 2 }] },
      { images: ['/a/disk.qcow2', '/b/disk.qcow2'] },
    ]) {
      expect(() => expandMatrix(bad as never), JSON.stringify(bad)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    }
  });
});
