// Evaluating the image's derivation without building (the registry standing in for the build): real Nix
// on flakes that can, and cannot, be evaluated that way.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { evaluateDerivation } from '../../src/nix/build.js';
import { nixTestEnv } from '../support/nix.js';

async function flake(body: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'nia-flake-eval-'));
  await writeFile(join(dir, 'flake.nix'), `{ outputs = { self }: ${body}; }\n`);
  return `path:${dir}`;
}

const drv = (name: string, script: string) =>
  `derivation { name = "${name}"; system = "x86_64-linux"; builder = "/bin/sh"; PATH = "/usr/bin:/bin"; salt = "${Math.random()}"; args = [ "-c" "${script}" ]; }`;
const env = { ...process.env, ...nixTestEnv() };

describe('evaluateDerivation', () => {
  it('gives the derivation and its output path, building nothing', async () => {
    const f = await flake(`{ docker = ${drv('plain-image', 'echo hi > $out')}; }`);
    const r = await evaluateDerivation({ nix: 'nix', installable: `${f}#docker`, buildArgs: [], env });
    expect(r).toMatchObject({ drvPath: expect.stringMatching(/-plain-image\.drv$/), outPath: expect.stringMatching(/^\/nix\/store\/[0-9a-z]{32}-plain-image$/) });
    if (!('outPath' in r)) throw new Error('no output path');
    const { existsSync } = await import('node:fs');
    expect(existsSync(r.outPath)).toBe(false);
  });

  it('refuses an expression that imports from a derivation: evaluating it would need a build', async () => {
    // The image's own builder script holds text read from another derivation's output.
    const f = await flake(`let version = builtins.readFile (${drv('ifd-version', 'printf 1.0 > $out')}); in { docker = ${drv('ifd-image', 'echo ${version} > $out')}; }`);
    const r = await evaluateDerivation({ nix: 'nix', installable: `${f}#docker`, buildArgs: [], env });
    expect(r).toEqual({ reason: 'it imports from a derivation: evaluating it needs a build' });
  });

  it('refuses an impure evaluation', async () => {
    const f = await flake(`{ docker = ${drv('impure-image', 'echo hi > $out')}; }`);
    expect(await evaluateDerivation({ nix: 'nix', installable: `${f}#docker`, buildArgs: ['--impure'], env })).toEqual({ reason: 'build-args has --impure: the derivation does not fix the image' });
  });
});
