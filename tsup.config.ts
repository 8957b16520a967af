import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    'cli/main': 'src/cli/main.ts',
    'vitest/index': 'src/vitest/index.ts',
    'vitest/pool-owner': 'src/vitest/pool-owner.ts',
    'reaper/main': 'src/reaper/main.ts',
    'results/worker': 'src/results/worker.ts',
  },
  format: ['esm'],
  target: 'node20',
  dts: { entry: { index: 'src/index.ts', 'vitest/index': 'src/vitest/index.ts', 'vitest/pool-owner': 'src/vitest/pool-owner.ts' } },
  sourcemap: true,
  clean: true,
  splitting: true,
  // vitest is the user's (a peer): never bundled
  external: ['vitest'],
});
