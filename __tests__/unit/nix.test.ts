// Pieces of the Nix side: build-args splitting, build failure lines, runner systems, settings, the
// version check, and where the tarball's checksum comes from.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeFailure, ignoredSubstituters } from '../../src/nix/build.js';
import { splitArgs } from '../../src/inputs/index.js';
import { appendMissingLines, expectedSha256, nixConfig, nixSettings, publishedSha256, releaseUrl, runnerSystem } from '../../src/nix/install.js';
import { knownSha256, knownVersions } from '../../src/nix/known-hashes.js';
import { atLeast, checkVersion, DEFAULT_NIX_VERSION, OLDEST_NIX } from '../../src/nix/version.js';
import { makeNixRelease, serveDirectory, startCountingProxy, type CountingProxy, type FileServer, type NixRelease } from '../support/nix.js';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('splitArgs', () => {
  it('splits like a shell, without running one', () => {
    expect(splitArgs('')).toEqual([]);
    expect(splitArgs('  --impure   -L ')).toEqual(['--impure', '-L']);
    expect(splitArgs(`--option substituters 'https://a https://b' --arg x "a \\"b\\" $HOME"`)).toEqual([
      '--option', 'substituters', 'https://a https://b', '--arg', 'x', 'a "b" $HOME',
    ]);
    expect(splitArgs('a\\ b "" c')).toEqual(['a b', '', 'c']);
    expect(() => splitArgs('--x "open')).toThrow(/^input build-args: unterminated " quote/);
  });
});

describe('describeFailure', () => {
  it('names the failing derivation and the last lines of its log', () => {
    const stderr = [
      "error: builder for '/nix/store/abc-broken-image.drv' failed with exit code 3;",
      '       last 2 log lines:',
      '       > compiling...',
      '       > error: the build is broken on purpose',
      '       For full logs, run ...',
    ].join('\n');
    expect(describeFailure('path:/f#docker', 1, stderr)).toBe(
      "nix build path:/f#docker failed: builder for '/nix/store/abc-broken-image.drv' failed with exit code 3; last log lines: compiling... | error: the build is broken on purpose",
    );
  });

  it('takes the log lines --print-build-logs printed when Nix does not repeat them', () => {
    const stderr = [
      "building '/nix/store/0z1d5cxya1vy24x30vjyy27brwc68ppa-broken-image.drv'...",
      'broken-image> compiling...',
      'broken-image> error: the build is broken on purpose',
      "error: builder for '/nix/store/0z1d5cxya1vy24x30vjyy27brwc68ppa-broken-image.drv' failed with exit code 3",
    ].join('\n');
    expect(describeFailure('path:/f#docker', 1, stderr)).toBe(
      "nix build path:/f#docker failed: builder for '/nix/store/0z1d5cxya1vy24x30vjyy27brwc68ppa-broken-image.drv' failed with exit code 3; last log lines: compiling... | error: the build is broken on purpose",
    );
  });

  it('keeps an evaluation error to its first lines, without colour codes', () => {
    const stderr = "\x1b[31;1merror:\x1b[0m flake 'path:/f' does not provide attribute 'packages.x86_64-linux.nope' or 'nope'\n";
    expect(describeFailure('path:/f#nope', 1, stderr)).toBe(
      "nix build path:/f#nope failed (exit 1): error: flake 'path:/f' does not provide attribute 'packages.x86_64-linux.nope' or 'nope'",
    );
  });
});

describe('ignoredSubstituters', () => {
  it('reads the URLs of the substituters an untrusted user cannot use, from the log as Nix prints it', () => {
    const log = [
      "\x1b[35;1mwarning:\x1b[0m ignoring untrusted substituter 'file:///home/runner/.cache/nix-image-action/binary-cache?trusted=1', you are not a trusted user.",
      'Run `man nix.conf` for more information on the `substituters` configuration option.',
      "warning: ignoring untrusted substituter 'https://example.cachix.org', you are not a trusted user.",
      "building '/nix/store/abc-app.drv'...",
    ].join('\n');
    expect(ignoredSubstituters(log)).toEqual(['file:///home/runner/.cache/nix-image-action/binary-cache?trusted=1', 'https://example.cachix.org']);
    expect(ignoredSubstituters("building '/nix/store/abc-app.drv'...")).toEqual([]);
  });
});

describe('install settings', () => {
  it('supports the two Linux systems Nix publishes tarballs for', () => {
    expect(runnerSystem('linux', 'x64')).toBe('x86_64-linux');
    expect(runnerSystem('linux', 'arm64')).toBe('aarch64-linux');
    expect(() => runnerSystem('win32', 'x64')).toThrow('cannot install Nix on a win32/x64 runner: supported are x86_64-linux and aarch64-linux');
    expect(releaseUrl('2.31.2', 'x86_64-linux')).toBe('https://releases.nixos.org/nix/nix-2.31.2/nix-2.31.2-x86_64-linux.tar.xz');
  });

  it("adds to the environment's settings with extra- forms, extra-nix-conf after it, and no secret in NIX_CONFIG", () => {
    const config = nixConfig(
      { githubToken: 'ghs_tok', extraNixConf: 'max-jobs = 1\naccess-tokens = gitlab.com=PAT:glpat-x\nextra-substituters = https://c.example' },
      'substituters =',
    );
    expect(config.env).toBe(['substituters =', 'max-jobs = 1', 'extra-substituters = https://c.example', 'extra-experimental-features = nix-command flakes'].join('\n'));
    expect(config.secret).toBe('access-tokens = gitlab.com=PAT:glpat-x\nextra-access-tokens = github.com=ghs_tok\n');
    expect(config.withheld).toBe(false);
    // No max-jobs, no plain experimental-features or access-tokens: nothing of the user's is replaced.
    expect(nixConfig({}).env).toBe('extra-experimental-features = nix-command flakes');
    expect(nixConfig({}).secret).toBe('');
  });

  it('gives Nix no secret at all when evaluation is impure', () => {
    const config = nixConfig({ githubToken: 'ghs_tok', extraNixConf: 'access-tokens = gitlab.com=glpat-x\nmax-jobs = 1', impure: true });
    expect(config).toEqual({ env: 'max-jobs = 1\nextra-experimental-features = nix-command flakes', secret: '', withheld: true });
    expect(nixConfig({ extraNixConf: 'max-jobs = 1', impure: true }).withheld).toBe(false);
  });

  it('writes nothing secret to disk: the nix.conf lines of a fresh install carry no token', () => {
    expect(nixSettings({ trustedUser: 'runner' })).toBe(
      ['extra-experimental-features = nix-command flakes', 'max-jobs = auto', 'extra-trusted-users = runner', ''].join('\n'),
    );
  });

  it("appends only the lines nix.conf lacks, never a setting the user's nix.conf sets, so a second run adds nothing", async () => {
    const file = join(await mkdtemp(join(tmpdir(), 'nia-conf-')), 'nix.conf');
    await writeFile(file, 'substituters = https://c.example\nmax-jobs = 0\ntrusted-users = root alice');
    expect(await appendMissingLines(file, nixSettings({ trustedUser: 'runner' }))).toEqual([
      'extra-experimental-features = nix-command flakes',
      'extra-trusted-users = runner',
    ]);
    expect(await appendMissingLines(file, nixSettings({ trustedUser: 'runner' }))).toEqual([]);
    expect(await readFile(file, 'utf8')).toBe(
      'substituters = https://c.example\nmax-jobs = 0\ntrusted-users = root alice\nextra-experimental-features = nix-command flakes\nextra-trusted-users = runner\n',
    );
  });
});

describe('the Nix version', () => {
  const at = { nix: '/usr/bin/nix', installed: false };
  it('compares versions numerically, pre-release suffixes aside', () => {
    expect(atLeast('2.8.0', OLDEST_NIX)).toBe(true);
    expect(atLeast('2.10', '2.9.1')).toBe(true);
    expect(atLeast('2.18.0pre20230101_abc', '2.18')).toBe(true);
    expect(atLeast('2.3.16', OLDEST_NIX)).toBe(false);
  });
  it('says nothing when the Nix used is the one asked for', () => {
    expect(checkVersion({ ...at, used: '2.8.0', asked: '2.8.0' })).toBeUndefined();
  });
  it('a notice when only the default was asked for, a warning when the job asked for another version', () => {
    expect(checkVersion({ ...at, used: '2.8.0', asked: DEFAULT_NIX_VERSION })).toEqual({
      level: 'notice',
      message: `using the Nix 2.8.0 already on the runner (/usr/bin/nix), not ${DEFAULT_NIX_VERSION}: set nix-version and install-nix: true to install another`,
    });
    expect(checkVersion({ ...at, used: '2.8.0', asked: '2.30.1' })).toEqual({
      level: 'warning',
      message: 'nix-version is 2.30.1 but Nix 2.8.0 is already on the runner (/usr/bin/nix) and is used: set install-nix: true to install 2.30.1',
    });
  });
  it('refuses a Nix older than the oldest the action supports', () => {
    expect(checkVersion({ ...at, used: '2.3.16', asked: DEFAULT_NIX_VERSION })).toEqual({
      level: 'error',
      message: `Nix 2.3.16 (/usr/bin/nix) is older than 2.4, the oldest this action supports: upgrade it, or set install-nix: true to install Nix ${DEFAULT_NIX_VERSION}`,
    });
  });
  it("DEFAULT_NIX_VERSION is action.yml's default for nix-version", async () => {
    const yml = await readFile(new URL('../../action.yml', import.meta.url), 'utf8');
    expect(/\n  nix-version:\n(?: {4}.*\n)*? {4}default: '([^']*)'/.exec(yml)?.[1]).toBe(DEFAULT_NIX_VERSION);
  });
});

describe('the checksum of the Nix tarball', () => {
  let proxy: CountingProxy;
  let release: NixRelease;
  let server: FileServer;
  const saved = { http_proxy: process.env.http_proxy, https_proxy: process.env.https_proxy, no_proxy: process.env.no_proxy };
  beforeAll(async () => {
    release = await makeNixRelease('2.99.0', 'x86_64-linux');
    server = await serveDirectory(release.dir);
    proxy = await startCountingProxy({ 'nix-release.test:80': Number(new URL(server.url).port) });
    process.env.http_proxy = proxy.url;
    process.env.https_proxy = proxy.url;
    delete process.env.no_proxy;
  });
  afterAll(async () => {
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
    await proxy?.stop();
    await server?.stop();
  });

  it('is shipped for known official releases: nothing is fetched, from the release host or anywhere', async () => {
    const temp = await mkdtemp(join(tmpdir(), 'nia-sha-'));
    const before = proxy.requests.length;
    expect(await expectedSha256(releaseUrl('2.35.2', 'x86_64-linux'), undefined, temp)).toBe('0c3960a9792331a22081c3c7a5d8465db9b17c50b3acdf18587fa4c6f2cb1158');
    expect(await expectedSha256(releaseUrl('2.35.2', 'aarch64-linux'), undefined, temp)).toBe('4d0302a2910f5eec1c33b8deef634f04899a75737e7001ec49908d003ae5efda');
    // nix-sha256 wins over the table.
    expect(await expectedSha256(releaseUrl('2.35.2', 'x86_64-linux'), 'ab'.repeat(32), temp)).toBe('ab'.repeat(32));
    expect(proxy.requests.length).toBe(before);
    expect(knownSha256('https://mirror.example/nix/nix-2.35.2/nix-2.35.2-x86_64-linux.tar.xz')).toBeUndefined();
    for (const system of ['x86_64-linux', 'aarch64-linux']) {
      for (const v of knownVersions(system)) expect(knownSha256(releaseUrl(v, system))).toMatch(/^[0-9a-f]{64}$/);
    }
  });

  it("is otherwise downloaded with tool-cache, through the runner's proxy, and left nowhere", async () => {
    const temp = await mkdtemp(join(tmpdir(), 'nia-sha-'));
    const url = `http://nix-release.test/nix-${release.version}-${release.system}.tar.xz`;
    const before = proxy.requests.length;
    expect(await publishedSha256(url, temp)).toBe(release.sha256);
    expect(proxy.requests.slice(before)).toEqual(['CONNECT nix-release.test:80']);
    expect(server.requests.at(-1)).toBe(`/nix-${release.version}-${release.system}.tar.xz.sha256`);
    expect(await readdir(temp)).toEqual([]);
  });
});
