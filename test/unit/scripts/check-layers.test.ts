import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('../../../scripts/check-layers.mjs', import.meta.url));
const made: string[] = [];

/** A src/ tree in a fresh temp dir: path → file text. */
function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'kvmtest-layers-'));
  made.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, 'src', path)), { recursive: true });
    writeFileSync(join(root, 'src', path), text);
  }
  return root;
}

function check(root: string, allow: unknown[] = []): { status: number | null; out: string } {
  const allowFile = join(root, 'allow.json');
  writeFileSync(allowFile, JSON.stringify({ cycles: allow }));
  const run = spawnSync(process.execPath, [script, join(root, 'src'), '--allow', allowFile], { encoding: 'utf8' });
  return { status: run.status, out: run.stdout + run.stderr };
}

afterEach(() => {
  for (const root of made.splice(0)) rmSync(root, { recursive: true, force: true });
});

describe('scripts/check-layers.mjs', () => {
  it('passes a tree whose folders point one way (root files are nodes of their own)', () => {
    const root = tree({
      'errors.ts': 'export const E = 1;\n',
      'util/a.ts': "import { E } from '../errors.js';\nexport const A = E;\n",
      'matrix/m.ts': "import { A } from '../util/a.js';\nimport type { R } from '../results/r.js';\nexport const M: R = A;\n",
      'results/r.ts': "// import { M } from '../matrix/m.js'; (a comment is not an import)\nexport type R = number;\n",
    });
    const { status, out } = check(root);
    expect(out).toContain('no cycles');
    expect(status).toBe(0);
  });

  it('fails on a cycle, type-only and multi-line imports and re-exports included, naming the files', () => {
    const root = tree({
      'errors.ts': "import { A } from './util/a.js';\nexport const E = A;\n",
      'util/a.ts': "import type {\n  E,\n} from '../errors.js';\nexport const A = 1 as E;\n",
      'matrix/m.ts': "export * from '../results/r.js';\n",
      'results/r.ts': "import type { M } from '../matrix/m.js';\nexport type R = M;\n",
      'cli/c.ts': "export const load = () => import('../vitest/v.js');\n",
      'vitest/v.ts': "import { load } from '../cli/c.js';\nexport const V = load;\n",
    });
    const { status, out } = check(root);
    expect(status).toBe(1);
    expect(out).toContain('cycle between folders: errors ↔ util');
    expect(out).toContain('cycle between folders: matrix ↔ results');
    expect(out).toContain('results/r.ts → ../matrix/m.js');
    expect(out).toContain('matrix/m.ts → ../results/r.js');
    expect(out).toContain('cli/c.ts → ../vitest/v.js');
  });

  it('lets an allow-listed cycle pass, and fails an allow-list entry whose cycle is gone', () => {
    const files = {
      'guest/g.ts': "import { S } from '../snapshot/s.js';\nexport const G = S;\n",
      'snapshot/s.ts': "import type { G } from '../guest/g.js';\nexport const S = 1;\n",
    };
    const entry = { folders: ['snapshot', 'guest'], issue: '#11' };
    expect(check(tree(files), [entry]).status).toBe(0);
    const fixed = check(tree({ ...files, 'snapshot/s.ts': 'export const S = 1;\n' }), [entry]);
    expect(fixed.status).toBe(1);
    expect(fixed.out).toContain('guest ↔ snapshot (#11) has no cycle any more');
  });
});
