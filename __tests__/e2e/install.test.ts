// Installing Nix: the bundled action on a PATH without Nix downloads a release-shaped tarball from a
// loopback server with @actions/tool-cache, checks its SHA-256, runs its installer with the official
// flags, and builds with the Nix it installed; an existing Nix is used as it is. A tarball from anywhere
// but the official release server needs nix-sha256; the tool cache keeps a tarball under its hash, and
// downloads go through the runner's proxy. The user's own nix.conf settings survive an install.
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAction } from '../support/action.js';
import { makeFixtureFlake, type FixtureFlake } from '../support/flakes.js';
import { makeNixRelease, nixTestEnv, pathWithoutNix, serveDirectory, startCountingProxy, type FileServer, type NixRelease } from '../support/nix.js';

let release: NixRelease;
let server: FileServer;
let noNix: string;
let fixture: FixtureFlake;

beforeAll(async () => {
  release = await makeNixRelease('2.99.0', 'x86_64-linux');
  server = await serveDirectory(release.dir);
  noNix = await pathWithoutNix();
  fixture = await makeFixtureFlake({ kind: 'gzip' });
});
afterAll(async () => server?.stop());

const tarballName = () => `/nix-${release.version}-${release.system}.tar.xz`;

async function runWith(inputs: Record<string, string>, env: Record<string, string | undefined> = {}, home?: string) {
  home ??= await mkdtemp(join(tmpdir(), 'nia-home-'));
  const run = await runAction({
    runtime: 'node24',
    inputs: {
      flake: fixture.flake,
      attr: fixture.attr,
      push: 'false',
      cache: 'false',
      'nix-version': release.version,
      'nix-install-url': `${server.url}${tarballName()}`,
      'nix-sha256': release.sha256,
      ...inputs,
    },
    env: { ...nixTestEnv({ PATH: noNix, HOME: home }), ...env },
  });
  return { run, home };
}

describe('install-nix', () => {
  it('auto, with no Nix present: downloads, verifies, installs with the official flags, builds with it', async () => {
    const before = server.requests.length;
    const toolCache = await mkdtemp(join(tmpdir(), 'nia-toolcache-'));
    const { run, home } = await runWith({}, { RUNNER_TOOL_CACHE: toolCache });
    expect(run.main.errors, run.log).toEqual([]);
    expect(run.main.code).toBe(0);
    // The checksum is nix-sha256's: nothing is fetched beside the tarball.
    expect(server.requests.slice(before)).toEqual([tarballName()]);

    const record = await readFile(join(home, 'installer-record'), 'utf8');
    // No systemd here: the single-user install.
    expect(record).toMatch(/^args: --no-daemon --no-channel-add --nix-extra-conf-file \S+nix-image-action\.nix\.conf$/m);
    expect(record).toContain('extra-experimental-features = nix-command flakes');
    expect(record).toContain('max-jobs = auto');
    expect(record).toMatch(/^extra-trusted-users = \S+$/m);
    // The token reaches Nix through NIX_CONFIG only: never in a nix.conf, nor in the file the installer gets.
    expect(record).not.toContain('access-tokens');
    expect(record).not.toContain('ghs_testtoken');
    // The single-user installer writes no nix.conf: the action puts the settings where Nix reads them.
    const conf = await readFile(join(home, '.config', 'nix', 'nix.conf'), 'utf8');
    expect(conf).toContain('extra-experimental-features = nix-command flakes');
    expect(conf).not.toContain('access-tokens');
    expect(run.rawLog).not.toMatch(/access-tokens = github\.com=ghs_/);
    // The conf file, the download and the unpacked tarball are gone from RUNNER_TEMP.
    expect(await readdir(run.runnerTemp)).toEqual([]);

    expect(run.outputs.imageid).toBe(fixture.expected!.configDigest);
    expect(JSON.parse(run.outputs.metadata!)['nix-version']).toBe('2.99.0');
    expect(run.main.stdout).toContain('installed Nix 2.99.0');
    // Later steps see the installed Nix.
    expect(run.paths).toContain(join(home, '.nix-profile', 'bin'));

    // A second job on the same runner takes the tarball from the tool cache.
    const again = server.requests.length;
    const second = await runWith({}, { RUNNER_TOOL_CACHE: toolCache });
    expect(second.run.main.code, second.run.log).toBe(0);
    expect(server.requests.slice(again)).toEqual([]);
    expect(second.run.main.stdout).toContain('found in the tool cache');
  });

  it("installing again in the same HOME keeps the user's settings and adds no second copy of the action's", async () => {
    const home = await mkdtemp(join(tmpdir(), 'nia-home-'));
    await mkdir(join(home, '.config', 'nix'), { recursive: true });
    await writeFile(join(home, '.config', 'nix', 'nix.conf'), 'trusted-users = root alice\nmax-jobs = 0\n');
    for (let i = 0; i < 2; i++) {
      const { run } = await runWith({ 'install-nix': 'true' }, {}, home);
      expect(run.main.code, run.log).toBe(0);
    }
    const conf = await readFile(join(home, '.config', 'nix', 'nix.conf'), 'utf8');
    expect(conf).toMatch(/^trusted-users = root alice\nmax-jobs = 0\nextra-experimental-features = nix-command flakes\nextra-trusted-users = \S+\n$/);
  });

  it('a tool-cache entry serves only the hash it was verified against: a wrong nix-sha256 is refused on a hit', async () => {
    const toolCache = await mkdtemp(join(tmpdir(), 'nia-toolcache-'));
    const first = await runWith({ 'install-nix': 'true' }, { RUNNER_TOOL_CACHE: toolCache });
    expect(first.run.main.code, first.run.log).toBe(0);
    const before = server.requests.length;
    const { run, home } = await runWith({ 'install-nix': 'true', 'nix-sha256': 'cd'.repeat(32) }, { RUNNER_TOOL_CACHE: toolCache });
    expect(run.main.code).not.toBe(0);
    expect(run.main.errors).toEqual([
      `the Nix tarball ${server.url}${tarballName()} has SHA-256 ${release.sha256}, expected ${'cd'.repeat(32)}: not installing it`,
    ]);
    expect(server.requests.slice(before)).toEqual([tarballName()]);
    expect(existsSync(join(home, 'installer-record'))).toBe(false);
  });

  it("downloads the tarball through the runner's proxy", async () => {
    const proxy = await startCountingProxy({ 'nix-mirror.test:80': Number(new URL(server.url).port) });
    try {
      const before = server.requests.length;
      const { run } = await runWith(
        { 'install-nix': 'true', 'nix-install-url': `http://nix-mirror.test${tarballName()}` },
        { http_proxy: proxy.url, HTTP_PROXY: proxy.url, no_proxy: undefined, NO_PROXY: undefined },
      );
      expect(run.main.code, run.log).toBe(0);
      expect(proxy.requests).toEqual(['CONNECT nix-mirror.test:80']);
      expect(server.requests.slice(before)).toEqual([tarballName()]);
      expect(JSON.parse(run.outputs.metadata!)['nix-version']).toBe(release.version);
    } finally {
      await proxy.stop();
    }
  });

  it('refuses a nix-install-url other than the official one without nix-sha256, downloading nothing', async () => {
    const before = server.requests.length;
    const { run, home } = await runWith({ 'install-nix': 'true', 'nix-sha256': '' });
    expect(run.main.code).not.toBe(0);
    expect(run.main.errors).toEqual([
      'input nix-install-url: needs nix-sha256 unless it is the official release URL (a checksum fetched from the same server proves nothing)',
    ]);
    expect(server.requests.length).toBe(before);
    expect(existsSync(join(home, 'installer-record'))).toBe(false);
  });

  it('refuses a tarball whose SHA-256 does not match, before running anything from it', async () => {
    const { run, home } = await runWith({ 'install-nix': 'true', 'nix-sha256': 'ab'.repeat(32) });
    expect(run.main.code).not.toBe(0);
    expect(run.main.errors).toEqual([
      `the Nix tarball ${server.url}${tarballName()} has SHA-256 ${release.sha256}, expected ${'ab'.repeat(32)}: not installing it`,
    ]);
    await expect(readFile(join(home, 'installer-record'))).rejects.toThrow();
  });

  it('fails in one line when the tarball cannot be downloaded', async () => {
    const { run } = await runWith({ 'nix-install-url': `${server.url}/missing.tar.xz` });
    expect(run.main.code).not.toBe(0);
    expect(run.main.errors).toHaveLength(1);
    expect(run.main.errors[0]).toMatch(new RegExp(`^cannot download the Nix tarball ${server.url}/missing\\.tar\\.xz: .*404`));
  });

  it('fails in one line when the installer fails', async () => {
    const broken = await makeNixRelease('2.98.0', 'x86_64-linux', { failing: true });
    const brokenServer = await serveDirectory(broken.dir);
    try {
      const { run } = await runWith({
        'nix-version': '2.98.0',
        'nix-install-url': `${brokenServer.url}/nix-2.98.0-x86_64-linux.tar.xz`,
        'nix-sha256': broken.sha256,
      });
      expect(run.main.code).not.toBe(0);
      expect(run.main.errors).toEqual(['the Nix installer exited with code 1: error: cannot create /nix: Permission denied']);
    } finally {
      await brokenServer.stop();
    }
  });

  it('false, with no Nix present: a clear input error', async () => {
    const { run } = await runWith({ 'install-nix': 'false' });
    expect(run.main.code).not.toBe(0);
    expect(run.main.errors).toEqual([
      'input install-nix: is false but no nix is on PATH or in /nix/var/nix/profiles/default/bin: install Nix first, or use auto',
    ]);
  });

  it('auto, with Nix on PATH: uses it, downloads nothing', async () => {
    const before = server.requests.length;
    const { run } = await runWith({}, { PATH: process.env.PATH! });
    expect(run.main.code, run.log).toBe(0);
    expect(server.requests.length).toBe(before);
    expect(JSON.parse(run.outputs.metadata!)['nix-version']).toMatch(/^2\.\d+/);
    expect(run.main.stdout).toMatch(/using Nix 2\.\d+\S* \(\/usr\/bin\/nix\)/);
    expect(run.outputs.imageid).toBe(fixture.expected!.configDigest);
  });
});
