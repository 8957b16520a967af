import { kvmtestError } from '../errors.js';

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** '10m', '90s', '1.5h', '250ms' or a number of milliseconds → milliseconds. */
export function parseDuration(value: string | number, option = 'timeout'): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value >= 0) return value;
  } else {
    const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value);
    if (match) return Math.round(Number(match[1]) * DURATION_UNITS[match[2] ?? 'ms']!);
  }
  throw kvmtestError('INVALID_OPTION', `Expected the "${option}" option to be a duration such as 90s, 10m or a number of milliseconds, got ${describe(value)}`);
}

const SIZE_UNITS: Record<string, number> = { K: 1 / 1024, M: 1, G: 1024, T: 1024 * 1024 };

/** '1G', '512M', '1536' (MiB) or a number of MiB → whole MiB. */
export function parseMemoryMiB(value: string | number, option = 'memory'): number {
  let mib = Number.NaN;
  if (typeof value === 'number') mib = value;
  else {
    const match = /^\s*(\d+(?:\.\d+)?)\s*([KMGT])?(?:i?B)?\s*$/i.exec(value);
    if (match) mib = Number(match[1]) * SIZE_UNITS[(match[2] ?? 'M').toUpperCase()]!;
  }
  if (Number.isInteger(mib) && mib >= 64 && mib <= 16 * 1024 * 1024) return mib;
  throw kvmtestError('INVALID_OPTION', `Expected the "${option}" option to be a size of at least 64M such as 512M or 2G (whole MiB), got ${describe(value)}`);
}

export function parseCpus(value: number, option = 'cpus'): number {
  if (Number.isInteger(value) && value >= 1 && value <= 288) return value;
  throw kvmtestError('INVALID_OPTION', `Expected the "${option}" option to be a whole number of CPUs from 1 to 288, got ${describe(value)}`);
}

export function describe(value: unknown): string {
  return `${JSON.stringify(value) ?? String(value)} (${typeof value})`;
}
