// Evaluating the image's derivation without building (the registry standing in for the build): real Nix
// on flakes that can, and cannot, be evaluated that way.
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
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

  it('refuses an impure evaluation, however it is asked for', async () => {
    const f = await flake(`{ docker = ${drv('impure-image', 'echo hi > $out')}; }`);
    const impure = { reason: 'the evaluation is impure (build-args or the Nix settings): the derivation does not fix the image' };
    for (const buildArgs of [['--impure'], ['--no-pure-eval'], ['--option', 'pure-eval', 'false'], ['--option', 'allow-unsafe-native-code-during-evaluation', 'true']]) {
      expect(await evaluateDerivation({ nix: 'nix', installable: `${f}#docker`, buildArgs, env }), buildArgs.join(' ')).toEqual(impure);
    }
    const viaConf = { ...env, NIX_CONFIG: `${env.NIX_CONFIG ?? ''}\npure-eval = false` };
    expect(await evaluateDerivation({ nix: 'nix', installable: `${f}#docker`, buildArgs: [], env: viaConf })).toEqual(impure);
  });

  // Only import from derivation takes the build path: any other error is the flake's, reported once.
  it('fails once, with Nix\'s message, on a syntax error and on a missing attribute', async () => {
    const broken = await flake('{ docker = ; }');
    await expect(evaluateDerivation({ nix: 'nix', installable: `${broken}#docker`, buildArgs: [], env })).rejects.toThrow(
      new RegExp(`^nix could not evaluate ${broken}#docker: error: syntax error, unexpected ';' at /nix/store/[0-9a-z]{32}-source/flake.nix:1:\\d+:$`),
    );
    const f = await flake(`{ docker = ${drv('plain-image', 'echo hi > $out')}; }`);
    await expect(evaluateDerivation({ nix: 'nix', installable: `${f}#nope`, buildArgs: [], env })).rejects.toThrow(/^nix could not evaluate .*#nope: error: flake '.*' does not provide attribute .*'nope'$/);
  });

  it('hints at git add for a file git does not track in a git flake', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nia-flake-git-'));
    const git = (...args: string[]) => promisify(execFile)('git', ['-C', dir, '-c', 'user.name=t', '-c', 'user.email=t@t', ...args]);
    await git('init', '-q');
    await writeFile(join(dir, 'flake.nix'), '{ outputs = { self }: { docker = import ./image.nix; }; }\n');
    await git('add', 'flake.nix');
    await git('commit', '-qm', 'flake');
    await writeFile(join(dir, 'image.nix'), `${drv('untracked-image', 'echo hi > $out')}\n`);
    const error = await evaluateDerivation({ nix: 'nix', installable: `${dir}#docker`, buildArgs: [], env }).then(() => undefined, (e: Error) => e);
    expect(error?.message).toMatch(/^nix could not evaluate .*#docker: error: .*image\.nix.* \(image\.nix is not tracked by git; git add it: flakes only see tracked files\)$/);
    // Tracked, it evaluates.
    await git('add', 'image.nix');
    expect(await evaluateDerivation({ nix: 'nix', installable: `${dir}#docker`, buildArgs: [], env })).toMatchObject({ drvPath: expect.stringMatching(/-untracked-image\.drv$/) });
  });
});
