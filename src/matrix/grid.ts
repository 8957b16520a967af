import { basename } from 'node:path';
import type { AxisValue, CellMatch, CellSpec } from './types.js';

/** A checked matrix grid (see resolveMatrixGrid in options.ts): what expandGrid crosses. */
export interface MatrixGrid {
  images: string[];
  vary: Record<string, AxisValue[]>;
  include: CellMatch[];
  exclude: CellMatch[];
}

/**
 * Images × axes, then `exclude` drops matching cells and `include` adds full combinations.
 * Order is deterministic (images, then each axis in the order given), which sharding relies on.
 * Pure and unchecked: the grid comes from resolveMatrixGrid, which also refuses what this yields badly.
 */
export function expandGrid(grid: MatrixGrid): CellSpec[] {
  let combos: Record<string, AxisValue>[] = [{}];
  for (const [name, values] of Object.entries(grid.vary)) combos = combos.flatMap((c) => values.map((v) => ({ ...c, [name]: v })));
  let cells = grid.images.flatMap((image) => combos.map((axesOf) => makeCell(image, axesOf)));
  cells = cells.filter((cell) => !grid.exclude.some((rule) => matches(rule, cell)));
  for (const rule of grid.include) {
    const { image, ...rest } = rule;
    const added: Record<string, AxisValue> = {};
    for (const [name, value] of Object.entries(rest)) if (value !== undefined) added[name] = value;
    const cell = makeCell(image!, added);
    if (!cells.some((c) => c.id === cell.id)) cells.push(cell);
  }
  return cells;
}

/** `debian-12/cpus=2/memory=512M`: the image's name (a path's file name), then each axis. */
export function cellId(image: string, axes: Record<string, AxisValue>): string {
  const name = image.includes('/') ? basename(image) : image;
  return [name, ...Object.entries(axes).map(([k, v]) => `${k}=${String(v)}`)].join('/');
}

/** An axis value written as text (`--vary cpus=1,2`, a cell id's `cpus=2`): a number or boolean where the text is one. Pure. */
export function parseAxisValue(text: string): AxisValue {
  if (text === 'true' || text === 'false') return text === 'true';
  return /^-?\d+(\.\d+)?$/.test(text) ? Number(text) : text;
}

function makeCell(image: string, axes: Record<string, AxisValue>): CellSpec {
  return { id: cellId(image, axes), image, axes };
}

function matches(rule: CellMatch, cell: CellSpec): boolean {
  return Object.entries(rule).every(([key, value]) => value === undefined || (key === 'image' ? cell.image === value : cell.axes[key] === value));
}
