// The `nix copy` the action writes an S3 binary cache with, run for real (Debian's Nix 2.8, which has no
// S3 client: a file:// destination stands in, with the same secret-key= parameter): Nix signs each path
// with the key from the 0600 file, copies the closure of the paths named (a binary cache takes a path
// only once its references are there) minus what the cache holds, and the file is gone afterwards.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { nixCopyEnv, nixCopyWithKey } from '../../src/nix/remote-cache.js';
import { generateCacheKey, nixTestEnv } from '../support/nix.js';

const run = promisify(execFile);
const env = { ...process.env, ...nixTestEnv() };

describe("the action's nix copy to a binary cache", () => {
  it('signs with the key file, copies the closure minus what the cache holds, and leaves no key behind', async () => {
    const work = await mkdtemp(join(tmpdir(), 'nia-copy-'));
    const key = await generateCacheKey('nia-copy-1');
    await writeFile(
      join(work, 'default.nix'),
      `rec { dep = derivation { name = "copy-dep"; system = "x86_64-linux"; builder = "/bin/sh"; salt = "${work}"; args = [ "-c" "echo dep > $out" ]; };
  top = derivation { name = "copy-top"; system = "x86_64-linux"; builder = "/bin/sh"; salt = "${work}"; inherit dep; args = [ "-c" "echo $dep > $out" ]; }; }`,
    );
    const top = (await run('nix-build', ['--no-out-link', join(work, 'default.nix'), '-A', 'top'], { env })).stdout.trim();
    const cache = join(work, 'cache');
    const runnerTemp = await mkdtemp(join(tmpdir(), 'nia-runner-temp-'));
    const previous = process.env.RUNNER_TEMP;
    process.env.RUNNER_TEMP = runnerTemp;
    try {
      await nixCopyWithKey('nix', (file) => `file://${cache}?secret-key=${file}`, key.secret, [top], nixCopyEnv({ ...env }));
    } finally {
      if (previous === undefined) delete process.env.RUNNER_TEMP;
      else process.env.RUNNER_TEMP = previous;
    }
    const narinfos = (await readdir(cache)).filter((n) => n.endsWith('.narinfo'));
    const texts = await Promise.all(narinfos.map((n) => readFile(join(cache, n), 'utf8')));
    expect(texts.map((t) => /^StorePath: .*-(copy-\w+)$/m.exec(t)?.[1]).sort()).toEqual(['copy-dep', 'copy-top']);
    for (const text of texts) expect(text).toMatch(/^Sig: nia-copy-1:/m);
    // Nix itself accepts the signatures under the public key.
    await run('nix', ['store', 'verify', '--store', `file://${cache}`, '--recursive', '--no-contents', '--sigs-needed', '1', '--option', 'trusted-public-keys', key.pub, top], { env });
    expect(await readdir(runnerTemp)).toEqual([]);
    expect(existsSync(runnerTemp)).toBe(true);
  });
});
