import { kvmtestError } from '../errors.js';
import { resolveSetup, type SetupOptions } from '../guest/options.js';
import { describe, parseDuration, parseMemoryMiB } from '../util/units.js';
import { expandGrid, type MatrixGrid } from './grid.js';
import { parseShard, type Shard } from './shard.js';
import type { AxisValue, CapsuleWhen, CellMatch, CellSpec, MatrixEvent, MatrixOptions } from './types.js';

export const DEFAULT_CELL_TIMEOUT_MS = 30 * 60_000;
/** What one run's capsules may hold together, by default. */
export const DEFAULT_CAPSULE_BUDGET_MIB = 8 * 1024;

/** How a run's capsules are kept (MatrixOptions' fields: to move into types.ts with the others). */
/** The capsule storage options (documented on MatrixOptions). */
export type CapsuleStorageOptions = Pick<MatrixOptions, 'capsuleEnv' | 'capsuleBudget'>;

/** The grid checked and defaulted, with the full matrix it expands to (before sharding). */
export interface ResolvedMatrixGrid extends MatrixGrid {
  cells: CellSpec[];
}

/** Every matrix option checked and defaulted: what runMatrix, the cells and the CLI read (never the raw options). */
export interface ResolvedMatrixOptions extends ResolvedMatrixGrid {
  run: string[] | string;
  push: Record<string, string>;
  mounts: Record<string, string>;
  env: Record<string, string>;
  cwd: string | undefined;
  collect: string[];
  node: 'host' | 'guest';
  concurrency: 'auto' | number;
  timeoutMs: number;
  retries: number;
  failFast: boolean;
  shard: Shard;
  boot: NonNullable<MatrixOptions['boot']>;
  snapshot: boolean;
  capsule: CapsuleWhen;
  capsuleEnv: boolean;
  capsuleBudgetMiB: number;
  /** The setup step as boot() takes it, its push sources made absolute against projectDir. */
  setup: SetupOptions | undefined;
  outDir: string | undefined;
  /** Relative push sources resolve against it: the raw projectDir, else the working directory at resolve time. */
  projectDir: string;
  onEvent: ((event: MatrixEvent) => void) | undefined;
  signal: AbortSignal | undefined;
}

const AXIS_NAME = /^[a-z][a-z0-9_]*$/i;

/** The one way a matrix option is refused: INVALID_OPTION naming the option's path, what was expected and what came. */
function invalid(path: string, expected: string, value: unknown): never {
  throw kvmtestError('INVALID_OPTION', `Expected the "${path}" option to be ${expected}, got ${describe(value)}`);
}

/**
 * Raw matrix options (runMatrix's argument, a config file, the CLI's flags merged into one) → the
 * complete, defaulted, checked configuration. Throws INVALID_OPTION naming the option for anything
 * wrong. Pure apart from reading the working directory for a missing projectDir.
 */
export function resolveMatrixOptions(options: MatrixOptions & CapsuleStorageOptions): ResolvedMatrixOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) invalid('options', 'an object of matrix options', options);
  const grid = resolveMatrixGrid(options);
  const { run } = options;
  const runOk = (typeof run === 'string' && run.trim().length > 0) || (Array.isArray(run) && run.length > 0 && run.every((a) => typeof a === 'string'));
  if (!runOk) invalid('run', 'a command: an array of strings or a shell string', run);
  const push = stringRecord(options.push, 'push', 'host path → guest path');
  for (const dest of Object.values(push)) if (!dest.startsWith('/')) invalid('push', 'an object whose destinations are absolute guest paths', options.push);
  const mounts = stringRecord(options.mounts, 'mounts', 'host directory → guest path');
  for (const dest of Object.values(mounts)) if (!dest.startsWith('/')) invalid('mounts', 'an object whose mount points are absolute guest paths', options.mounts);
  const env = stringRecord(options.env, 'env', 'name → value');
  const collect = options.collect ?? [];
  if (!Array.isArray(collect) || !collect.every((p) => typeof p === 'string' && p.startsWith('/'))) invalid('collect', 'an array of absolute guest paths', collect);
  const node = options.node ?? 'guest';
  if (node !== 'host' && node !== 'guest') invalid('node', "'host' or 'guest'", node);
  const concurrency = options.concurrency ?? 'auto';
  if (concurrency !== 'auto' && !(Number.isInteger(concurrency) && concurrency >= 1)) invalid('concurrency', "'auto' or a whole number ≥ 1", concurrency);
  const retries = options.retries ?? 0;
  if (!Number.isInteger(retries) || retries < 0 || retries > 10) invalid('retries', 'a whole number from 0 to 10', retries);
  const failFast = options.failFast ?? false;
  if (typeof failFast !== 'boolean') invalid('failFast', 'a boolean', failFast);
  const timeoutMs = options.timeout === undefined ? DEFAULT_CELL_TIMEOUT_MS : parseDuration(options.timeout, 'timeout');
  if (timeoutMs <= 0) invalid('timeout', 'a positive duration', options.timeout);
  const boot = options.boot ?? {};
  if (typeof boot !== 'object' || boot === null || Array.isArray(boot)) invalid('boot', 'an object of boot options such as { memory: "1G" }', boot);
  const snapshot = options.snapshot ?? true;
  if (typeof snapshot !== 'boolean') invalid('snapshot', 'a boolean', snapshot);
  const capsule = options.capsule ?? defaultCapsule();
  if (!['on-failure', 'always', 'never'].includes(capsule)) invalid('capsule', "'on-failure', 'always' or 'never'", capsule);
  const capsuleEnv = options.capsuleEnv ?? false;
  if (typeof capsuleEnv !== 'boolean') invalid('capsuleEnv', 'a boolean', capsuleEnv);
  const capsuleBudgetMiB = options.capsuleBudget === undefined ? DEFAULT_CAPSULE_BUDGET_MIB : parseMemoryMiB(options.capsuleBudget, 'capsuleBudget');
  const projectDir = options.projectDir ?? process.cwd();
  let setup: SetupOptions | undefined;
  if (options.setup !== undefined) {
    // checked now, once, so a bad setup fails the run instead of every cell
    const step = resolveSetup(options.setup, typeof projectDir === 'string' ? projectDir : process.cwd());
    setup = { ...options.setup, push: Object.fromEntries(step.push.map((p) => [p.source, p.dest])) };
  }
  for (const field of ['cwd', 'outDir', 'projectDir'] as const) {
    const value = options[field];
    if (value !== undefined && (typeof value !== 'string' || value === '')) invalid(field, 'a non-empty path', value);
  }
  return {
    ...grid,
    run,
    push,
    mounts,
    env,
    cwd: options.cwd,
    collect,
    node,
    concurrency,
    timeoutMs,
    retries,
    failFast,
    shard: parseShard(options.shard ?? '1/1'),
    boot,
    snapshot,
    capsule,
    capsuleEnv,
    capsuleBudgetMiB,
    setup,
    outDir: options.outDir,
    projectDir,
    onEvent: options.onEvent,
    signal: options.signal,
  };
}

/** The grid part alone (images, vary, include, exclude), checked, with the cells it expands to. Pure. */
export function resolveMatrixGrid(options: Pick<MatrixOptions, 'images' | 'vary' | 'include' | 'exclude'>): ResolvedMatrixGrid {
  const images = options.images;
  if (!Array.isArray(images) || images.length === 0 || images.some((i) => typeof i !== 'string' || i.length === 0)) {
    invalid('images', 'a non-empty array of image names or paths', images);
  }
  const vary = options.vary ?? {};
  if (typeof vary !== 'object' || vary === null || Array.isArray(vary)) invalid('vary', 'an object of axis → values', vary);
  for (const [name, values] of Object.entries(vary)) {
    checkAxisName(name, 'vary');
    if (!Array.isArray(values) || values.length === 0 || !values.every(isAxisValue)) invalid(`vary.${name}`, 'a non-empty array of strings, numbers or booleans', values);
  }
  const exclude = checkRules(options.exclude, 'exclude');
  const include = checkRules(options.include, 'include');
  include.forEach((rule, k) => {
    if (typeof rule.image !== 'string' || rule.image.length === 0) invalid(`include[${k}].image`, 'an image name or path (each entry names its image)', rule.image);
  });
  const grid: MatrixGrid = { images, vary, include, exclude };
  const cells = expandGrid(grid);
  const seen = new Map<string, CellSpec>();
  for (const cell of cells) {
    const other = seen.get(cell.id);
    if (other && other.image !== cell.image) invalid('images', `images whose file names differ (${other.image} and ${cell.image} both give the cell id "${cell.id}")`, images);
    seen.set(cell.id, cell);
  }
  if (cells.length === 0) invalid('exclude', 'rules that leave at least one cell (the matrix is empty: it removed every cell)', options.exclude);
  return { ...grid, cells };
}

/** Capsules on failure in CI (where nobody can step into the machine afterwards), none elsewhere. */
export function defaultCapsule(env: NodeJS.ProcessEnv = process.env): CapsuleWhen {
  return env.CI && env.CI !== 'false' && env.CI !== '0' ? 'on-failure' : 'never';
}

function stringRecord(value: Record<string, string> | undefined, field: string, shape: string): Record<string, string> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.values(value).every((v) => typeof v === 'string')) {
    invalid(field, `an object of strings (${shape})`, value);
  }
  return value;
}

function checkRules(rules: CellMatch[] | undefined, field: 'include' | 'exclude'): CellMatch[] {
  if (rules === undefined) return [];
  if (!Array.isArray(rules) || rules.some((r) => typeof r !== 'object' || r === null || Array.isArray(r))) {
    invalid(field, "an array of objects such as { image: 'debian-11', cpus: 1 }", rules);
  }
  rules.forEach((rule, k) => {
    for (const [key, value] of Object.entries(rule)) {
      if (key !== 'image') checkAxisName(key, `${field}[${k}]`);
      if (value !== undefined && !isAxisValue(value)) invalid(`${field}[${k}].${key}`, 'a string, number or boolean', value);
    }
  });
  return rules;
}

function checkAxisName(name: string, path: string): void {
  if (!AXIS_NAME.test(name) || name === 'image') invalid(path, 'an object whose axis names are identifiers other than "image" (letters, digits, _)', name);
}

function isAxisValue(value: unknown): value is AxisValue {
  return typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}
