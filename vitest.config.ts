import { defineConfig } from 'vitest/config';
import { VERSION_VARIABLES } from './src/core/options.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Suites start real servers on loopback ports; two workers fit the 2-core machines.
    maxWorkers: 2,
    // Tests name their keys: a build id that the machine's environment happens to set (see the
    // `version` option) must not change them. Empty values are skipped as unset.
    env: Object.fromEntries(VERSION_VARIABLES.map((name) => [name, ''])),
    // CI also writes a machine-readable report, from which .ci/run prints its closing line.
    reporters: process.env.CI ? ['default', ['json', { outputFile: '.tmp/vitest-report.json' }]] : ['default'],
  },
});
