// Bundles src/main.ts and src/post.ts into dist/ as ESM for the node24 runtime.
// The @actions/* packages are ESM-only while some of their dependencies are CommonJS,
// so the bundle gets a createRequire banner that gives those a working `require`.
import { build } from 'esbuild';
import { rm } from 'node:fs/promises';

await rm(new URL('../dist', import.meta.url), { recursive: true, force: true });
await build({
  entryPoints: { index: 'src/main.ts', post: 'src/post.ts' },
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  target: 'node24',
  format: 'esm',
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  outExtension: { '.js': '.js' },
  legalComments: 'none',
  logLevel: 'warning',
  banner: {
    js: "import { createRequire as __nia_createRequire } from 'node:module'; const require = __nia_createRequire(import.meta.url);",
  },
});
