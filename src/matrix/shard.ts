import { kvmtestError } from '../errors.js';
import { describe } from '../util/units.js';

export interface Shard {
  /** 1-based. */
  index: number;
  count: number;
}

/** '2/4' or { index: 2, count: 4 } → a checked Shard. */
export function parseShard(value: string | Shard): Shard {
  let shard: Shard | undefined;
  if (typeof value === 'string') {
    const match = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(value);
    if (match) shard = { index: Number(match[1]), count: Number(match[2]) };
  } else if (typeof value === 'object' && value !== null) shard = { index: value.index, count: value.count };
  if (!shard || !Number.isInteger(shard.index) || !Number.isInteger(shard.count) || shard.count < 1 || shard.index < 1 || shard.index > shard.count) {
    throw kvmtestError('INVALID_OPTION', `Expected the "shard" option to be i/n with 1 ≤ i ≤ n (such as 2/4), got ${describe(value)}`);
  }
  return shard;
}

export function formatShard(shard: Shard): string {
  return `${shard.index}/${shard.count}`;
}

/**
 * The cells shard i of n runs: every n-th cell starting at i-1 of the expanded order, so each cell is
 * in exactly one shard and the images spread across shards. Pure and deterministic.
 */
export function shardCells<T>(cells: readonly T[], shard: Shard): T[] {
  return cells.filter((_, k) => k % shard.count === shard.index - 1);
}
