// Pure pieces of the store cache: keys, the flake.lock hash, Nix's base32, narinfo, path-info shapes.
import { createHash } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cacheKeys, localFlakeDir, lockHash, pathSetKey, substituterLine, untrustedCacheWarning } from '../../src/nix/cache.js';
import { narinfo, nixBase32 } from '../../src/nix/binary-cache.js';
import { parsePathInfo } from '../../src/nix/store.js';

const sha = (s: string) => createHash('sha256').update(s).digest();

describe('keys', () => {
  it('restore by the flake.lock prefix, then the attr, then the system; cache-key replaces the prefix', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nia-lock-'));
    await writeFile(join(dir, 'flake.lock'), '{"nodes":{}}');
    const lock = createHash('sha256').update('{"nodes":{}}').digest('hex').slice(0, 16);
    expect(lockHash(`path:${dir}`)).toBe(lock);
    expect(lockHash(dir)).toBe(lock);
    expect(cacheKeys({ attr: 'docker', flake: dir, platform: 'linux', arch: 'x64' })).toEqual({
      keyBase: `nix-image-linux-x64-docker-${lock}-`,
      restoreKeys: [`nix-image-linux-x64-docker-${lock}-`, 'nix-image-linux-x64-docker-', 'nix-image-linux-x64-'],
    });
    expect(cacheKeys({ keyPrefix: 'my key,v1', attr: 'docker', flake: dir })).toEqual({ keyBase: 'my_key_v1-', restoreKeys: ['my_key_v1-'] });
    // A remote flake has no lock here: its reference names its inputs.
    expect(lockHash('github:owner/repo')).not.toBe(lockHash('github:owner/other'));
    expect(localFlakeDir('github:owner/repo')).toBeUndefined();
    expect(localFlakeDir('.', '/work')).toBe('/work');
    expect(localFlakeDir('./sub?dir=x', '/work')).toBe('/work/sub');
  });

  it('names a path set independently of its order', () => {
    const info = (path: string) => ({ path, narSize: 1, references: [], signatures: [] });
    const a = pathSetKey('k-', [info('/nix/store/a'), info('/nix/store/b')]);
    expect(a).toMatch(/^k-[0-9a-f]{16}$/);
    expect(pathSetKey('k-', [info('/nix/store/b'), info('/nix/store/a')])).toBe(a);
    expect(pathSetKey('k-', [info('/nix/store/a')])).not.toBe(a);
  });
});

describe('substituter', () => {
  it('is trusted, and consulted after cache.nixos.org (40) and every other configured substituter', () => {
    expect(substituterLine('/home/runner/.cache/nix-image-action/binary-cache')).toBe(
      'extra-substituters = file:///home/runner/.cache/nix-image-action/binary-cache?trusted=1&priority=1000',
    );
  });
});

describe('untrusted user', () => {
  it('warns, naming the fix, only when Nix ignored the store cache itself', () => {
    const dir = '/home/runner/.cache/nix-image-action/binary-cache';
    expect(untrustedCacheWarning([`file://${dir}?trusted=1`], dir, 'runner')).toBe(
      `store cache: Nix ignored file://${dir} because runner is not a trusted user, so the build could not use it; ` +
        'add "trusted-users = root runner" to nix.conf, or let this action install Nix (README, Store cache)',
    );
    expect(untrustedCacheWarning(['https://example.cachix.org'], dir, 'runner')).toBeUndefined();
    expect(untrustedCacheWarning([], dir, 'runner')).toBeUndefined();
  });
});

describe('binary cache format', () => {
  it('encodes hashes in Nix base32, as nix-hash --to-base32 does', () => {
    expect(nixBase32(sha(''))).toBe('0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73');
    expect(nixBase32(sha('hello'))).toBe('094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic');
  });

  it('writes narinfo with basenames for references and deriver', () => {
    const text = narinfo(
      { path: '/nix/store/yx3hfvay2gc7i0fai747ylmpcaglpgvb-top', narSize: 176, references: ['/nix/store/ighbr97y6l1gw8lzybm6pzy0winwqbm7-dep'], deriver: '/nix/store/7zx337yakl8qlqyc8zd9dz51n3lzw12v-top.drv', signatures: [] },
      sha(''),
      176,
    );
    expect(text).toBe(
      [
        'StorePath: /nix/store/yx3hfvay2gc7i0fai747ylmpcaglpgvb-top',
        'URL: nar/yx3hfvay2gc7i0fai747ylmpcaglpgvb.nar',
        'Compression: none',
        'NarHash: sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73',
        'NarSize: 176',
        'References: ighbr97y6l1gw8lzybm6pzy0winwqbm7-dep',
        'Deriver: 7zx337yakl8qlqyc8zd9dz51n3lzw12v-top.drv',
        '',
      ].join('\n'),
    );
  });

  it('reads nix path-info --json in the shape of Nix 2.8 (a list) and of 2.19+ (keyed by path)', () => {
    const old = JSON.stringify([{ path: '/nix/store/a-x', narSize: 10, references: ['/nix/store/b-y'], signatures: ['cache.nixos.org-1:abc'] }]);
    const current = JSON.stringify({ '/nix/store/a-x': { narSize: 10, references: ['/nix/store/b-y'], signatures: ['cache.nixos.org-1:abc'], deriver: '/nix/store/d.drv' }, '/nix/store/missing': null });
    expect(parsePathInfo(old)).toEqual([{ path: '/nix/store/a-x', narSize: 10, references: ['/nix/store/b-y'], signatures: ['cache.nixos.org-1:abc'] }]);
    expect(parsePathInfo(current)).toEqual([{ path: '/nix/store/a-x', narSize: 10, references: ['/nix/store/b-y'], signatures: ['cache.nixos.org-1:abc'], deriver: '/nix/store/d.drv' }]);
  });
});
