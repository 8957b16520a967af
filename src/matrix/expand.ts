import { resolveMatrixGrid } from './options.js';
import type { CellSpec, MatrixOptions } from './types.js';

export { cellId } from './grid.js';

/**
 * The cells of a matrix (images × axes, `exclude` then `include`), checked: throws INVALID_OPTION
 * for a bad grid. For callers that hold only the grid (matrixCells); runMatrix reads resolved.cells.
 */
export function expandMatrix(options: Pick<MatrixOptions, 'images' | 'vary' | 'include' | 'exclude'>): CellSpec[] {
  return resolveMatrixGrid(options).cells;
}
