// Pure pieces of the Nix side: build-args splitting, build failure lines, runner systems, settings.
import { describe, expect, it } from 'vitest';
import { describeFailure, ignoredSubstituters, splitArgs } from '../../src/nix/build.js';
import { appendMissingLines, nixConfigEnv, nixSettings, releaseUrl, runnerSystem } from '../../src/nix/install.js';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
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

  it('puts our settings first, the environment next and extra-nix-conf last, so later lines win', () => {
    expect(nixConfigEnv({ githubToken: 'tok', extraNixConf: 'max-jobs = 1' }, 'substituters =')).toBe(
      ['experimental-features = nix-command flakes', 'max-jobs = auto', 'access-tokens = github.com=tok', 'substituters =', 'max-jobs = 1'].join('\n'),
    );
    expect(nixSettings({ trustedUser: 'runner' })).toContain('trusted-users = root runner');
  });

  it('writes nothing secret to disk: the nix.conf lines of a fresh install carry no token', () => {
    expect(nixSettings({ trustedUser: 'runner' })).toBe(
      ['experimental-features = nix-command flakes', 'max-jobs = auto', 'trusted-users = root runner', ''].join('\n'),
    );
  });

  it('appends only the lines nix.conf lacks, so a second run adds nothing', async () => {
    const file = join(await mkdtemp(join(tmpdir(), 'nia-conf-')), 'nix.conf');
    await writeFile(file, 'substituters = https://c.example\nmax-jobs = auto');
    expect(await appendMissingLines(file, nixSettings({ trustedUser: 'runner' }))).toEqual([
      'experimental-features = nix-command flakes',
      'trusted-users = root runner',
    ]);
    expect(await appendMissingLines(file, nixSettings({ trustedUser: 'runner' }))).toEqual([]);
    expect(await readFile(file, 'utf8')).toBe(
      'substituters = https://c.example\nmax-jobs = auto\nexperimental-features = nix-command flakes\ntrusted-users = root runner\n',
    );
  });
});
