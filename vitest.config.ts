import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['__tests__/**/*.test.ts'],
    // Every test file's temp dirs under one TMPDIR of its own, removed after it; what libraries print to
    // stdout in a test goes to <tmp>/nia-test-logs/<file>.log, named by a failing test (support/tmp.ts).
    setupFiles: ['__tests__/support/tmp.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Integration and e2e tests start real registries and Nix builds; two cores.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
