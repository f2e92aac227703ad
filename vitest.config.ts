import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['__tests__/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Integration and e2e tests start real registries and Nix builds; two cores.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
