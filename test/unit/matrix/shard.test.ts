import { describe, expect, it } from 'vitest';
import { expandMatrix } from '../../../src/matrix/expand.js';
import { parseShard, shardCells } from '../../../src/matrix/shard.js';

describe('sharding', () => {
  const cells = expandMatrix({ images: ['debian-11', 'debian-12', 'debian-13'], vary: { cpus: [1, 2, 4], memory: ['512M', '2G'] } });

  it.each([1, 2, 3, 4, 5, 6, 7])('puts every cell in exactly one of %i shards', (count) => {
    const seen = new Map<string, number>();
    for (let index = 1; index <= count; index++) for (const cell of shardCells(cells, { index, count })) seen.set(cell.id, (seen.get(cell.id) ?? 0) + 1);
    expect(seen.size).toBe(cells.length);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    const sizes = Array.from({ length: count }, (_, i) => shardCells(cells, { index: i + 1, count }).length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
  });

  it('is deterministic and spreads images across shards', () => {
    expect(shardCells(cells, { index: 2, count: 3 })).toEqual(shardCells(cells, parseShard('2/3')));
    const small = expandMatrix({ images: ['debian-11', 'debian-12', 'debian-13'] });
    expect(shardCells(small, parseShard('1/2')).map((c) => c.id)).toEqual(['debian-11', 'debian-13']);
    expect(shardCells(small, parseShard('2/2')).map((c) => c.id)).toEqual(['debian-12']);
  });

  it('rejects shards out of range', () => {
    for (const bad of ['0/2', '3/2', '1/0', 'a/b', '1-2', '']) expect(() => parseShard(bad), bad).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });
});
