import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'] },
      },
      {
        // the real guest agent (guest/agent.py) spoken to over stdio by the real host client: no QEMU
        test: { name: 'contract', include: ['test/contract/**/*.test.ts'], testTimeout: 60_000 },
      },
      {
        // pages in a real headless Chromium (Debian's package, driven by playwright-core): no QEMU
        test: { name: 'browser', include: ['test/browser/**/*.test.ts'], testTimeout: 60_000 },
      },
      {
        // real guests under QEMU; two cores and TCG: one file (one guest) at a time
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/integration/global-setup.ts'],
          fileParallelism: false,
          testTimeout: 10 * 60_000,
          hookTimeout: 20 * 60_000,
        },
      },
    ],
  },
});
