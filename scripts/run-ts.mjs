// Runs a TypeScript entry point (scripts/*.ts, bench/*.ts) by bundling it with esbuild first, so the
// local-try and benchmark commands reuse __tests__/support/ without a second TypeScript runtime.
// usage: node scripts/run-ts.mjs FILE.ts [args...]
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [entry, ...args] = process.argv.slice(2);
if (!entry) {
  console.error('usage: node scripts/run-ts.mjs FILE.ts [args...]');
  process.exit(2);
}
// Inside node_modules so the bundle's bare imports resolve to the repository's packages.
const dir = resolve('node_modules/.cache/nia-ts');
mkdirSync(dir, { recursive: true });
const out = join(dir, `${process.pid}.mjs`);
await build({
  entryPoints: [resolve(entry)],
  outfile: out,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  logLevel: 'warning',
  absWorkingDir: process.cwd(),
});
process.argv = [process.argv[0], resolve(entry), ...args];
await import(pathToFileURL(out).href);
