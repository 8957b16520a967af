import { access } from 'node:fs/promises';

/** Whether a path can be reached (following links) with `mode` (fs.constants; default existence only). */
export async function exists(path: string, mode?: number): Promise<boolean> {
  return access(path, mode).then(
    () => true,
    () => false,
  );
}
