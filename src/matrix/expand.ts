import { basename } from 'node:path';
import { kvmtestError } from '../errors.js';
import { describe } from '../util/units.js';
import type { AxisValue, CellMatch, CellSpec, MatrixOptions } from './types.js';

const AXIS_NAME = /^[a-z][a-z0-9_]*$/i;

/**
 * Images × axes, then `exclude` drops matching cells and `include` adds full combinations.
 * Order is deterministic (images, then each axis in the order given), which sharding relies on. Pure.
 */
export function expandMatrix(options: Pick<MatrixOptions, 'images' | 'vary' | 'include' | 'exclude'>): CellSpec[] {
  const images = options.images;
  if (!Array.isArray(images) || images.length === 0 || images.some((i) => typeof i !== 'string' || i.length === 0)) {
    throw kvmtestError('CONFIG_INVALID', `Expected "images" to be a non-empty array of image names or paths, got ${describe(images)}`);
  }
  const vary = options.vary ?? {};
  if (typeof vary !== 'object' || vary === null || Array.isArray(vary)) throw kvmtestError('CONFIG_INVALID', `Expected "vary" to be an object of axis → values, got ${describe(vary)}`);
  const axes = Object.entries(vary);
  for (const [name, values] of axes) {
    checkAxisName(name, 'vary');
    if (!Array.isArray(values) || values.length === 0 || !values.every(isAxisValue)) {
      throw kvmtestError('CONFIG_INVALID', `Expected "vary.${name}" to be a non-empty array of strings, numbers or booleans, got ${describe(values)}`);
    }
  }
  let combos: Record<string, AxisValue>[] = [{}];
  for (const [name, values] of axes) combos = combos.flatMap((c) => values.map((v) => ({ ...c, [name]: v })));
  let cells = images.flatMap((image) => combos.map((axesOf) => makeCell(image, axesOf)));

  const exclude = checkRules(options.exclude, 'exclude');
  cells = cells.filter((cell) => !exclude.some((rule) => matches(rule, cell)));
  for (const rule of checkRules(options.include, 'include')) {
    const { image, ...rest } = rule;
    if (typeof image !== 'string' || image.length === 0) throw kvmtestError('CONFIG_INVALID', `Expected each "include" entry to name an image, got ${describe(rule)}`);
    const added: Record<string, AxisValue> = {};
    for (const [name, value] of Object.entries(rest)) if (value !== undefined) added[name] = value;
    const cell = makeCell(image, added);
    if (!cells.some((c) => c.id === cell.id)) cells.push(cell);
  }
  const seen = new Map<string, CellSpec>();
  for (const cell of cells) {
    const other = seen.get(cell.id);
    if (other && other.image !== cell.image) throw kvmtestError('CONFIG_INVALID', `Images ${other.image} and ${cell.image} give the same cell id "${cell.id}"; give them different file names`);
    seen.set(cell.id, cell);
  }
  if (cells.length === 0) throw kvmtestError('CONFIG_INVALID', 'The matrix is empty: "exclude" removed every cell');
  return cells;
}

/** `debian-12/cpus=2/memory=512M`: the image's name (a path's file name), then each axis. */
export function cellId(image: string, axes: Record<string, AxisValue>): string {
  const name = image.includes('/') ? basename(image) : image;
  return [name, ...Object.entries(axes).map(([k, v]) => `${k}=${String(v)}`)].join('/');
}

function makeCell(image: string, axes: Record<string, AxisValue>): CellSpec {
  return { id: cellId(image, axes), image, axes };
}

function matches(rule: CellMatch, cell: CellSpec): boolean {
  return Object.entries(rule).every(([key, value]) => value === undefined || (key === 'image' ? cell.image === value : cell.axes[key] === value));
}

function checkRules(rules: CellMatch[] | undefined, field: string): CellMatch[] {
  if (rules === undefined) return [];
  if (!Array.isArray(rules) || rules.some((r) => typeof r !== 'object' || r === null || Array.isArray(r))) {
    throw kvmtestError('CONFIG_INVALID', `Expected "${field}" to be an array of objects such as { image: 'debian-11', cpus: 1 }, got ${describe(rules)}`);
  }
  for (const rule of rules) {
    for (const [key, value] of Object.entries(rule)) {
      if (key !== 'image') checkAxisName(key, field);
      if (value !== undefined && !isAxisValue(value)) throw kvmtestError('CONFIG_INVALID', `Expected "${field}" values to be strings, numbers or booleans, got ${key}: ${describe(value)}`);
    }
  }
  return rules;
}

function checkAxisName(name: string, field: string): void {
  if (!AXIS_NAME.test(name) || name === 'image') {
    throw kvmtestError('CONFIG_INVALID', `Expected axis names in "${field}" to be identifiers other than "image" (letters, digits, _), got ${JSON.stringify(name)}`);
  }
}

function isAxisValue(value: unknown): value is AxisValue {
  return typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}
