// Docker credential helpers: `credHelpers` (per registry) and `credsStore` (the default) in the Docker
// config, run as `docker-credential-<name> get` with the server URL on stdin. A helper script of our own
// on PATH, in a temp dir, answers for the test registry; a push with what it returns reaches the real
// Distribution registry with htpasswd auth.
import { chmod, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeImageArchive, type MadeArchive } from '../support/archives.js';
import { skopeo, startRegistry, type TestRegistry } from '../support/registry.js';
import { detectSource } from '../../src/image/format.js';
import { RegistryClient } from '../../src/registry/client.js';
import { fromDockerConfig, resolveCredentials } from '../../src/registry/credentials.js';
import { pushImage } from '../../src/registry/push.js';

const quiet = { debug: () => {}, info: () => {}, warning: () => {} };
let work: string;
let bin: string;
let archive: MadeArchive;
let registry: TestRegistry;

/**
 * docker-credential-<name>: `get` reads a server URL and answers the test registry's credentials for
 * hosts under 127.0.0.1, "credentials not found" (exit 1) for others; every call is appended to calls.log.
 */
async function helper(name: string, body?: string): Promise<void> {
  const file = join(bin, `docker-credential-${name}`);
  const script =
    body ??
    [
      '#!/bin/sh',
      `[ "$1" = get ] || { echo "unknown action $1" >&2; exit 3; }`,
      'read -r server',
      `echo "${name} $server" >> "${join(bin, 'calls.log')}"`,
      'case "$server" in',
      `  127.0.0.1:*) printf '{"ServerURL":"%s","Username":"tester","Secret":"s3cret-pass"}\\n' "$server" ;;`,
      '  *) echo "credentials not found in native keychain"; exit 1 ;;',
      'esac',
    ].join('\n');
  await writeFile(file, `${script}\n`);
  await chmod(file, 0o755);
}

async function config(content: object): Promise<NodeJS.ProcessEnv> {
  const dir = await mkdtemp(join(work, 'docker-'));
  await writeFile(join(dir, 'config.json'), JSON.stringify(content));
  return { DOCKER_CONFIG: dir, PATH: `${bin}:${process.env.PATH ?? ''}`, HOME: work };
}

const calls = async () => (await readFile(join(bin, 'calls.log'), 'utf8').catch(() => '')).trim().split('\n').filter(Boolean);

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'nia-helpers-'));
  bin = await mkdtemp(join(work, 'bin-'));
  await helper('niatest');
  await helper('niastore');
  await helper('niagarbage', '#!/bin/sh\ncat >/dev/null\necho "not json at all"');
  await helper('niabroken', '#!/bin/sh\ncat >/dev/null\necho "the keychain is locked" >&2\nexit 4');
  archive = await makeImageArchive({ dir: work, name: 'img', compression: 'none', layers: [{ size: 50_000, seed: 'helper', compressible: true }] });
  registry = await startRegistry({ tls: true, auth: 'htpasswd' });
});
afterAll(async () => registry?.stop());

describe('credential helpers', () => {
  it('credHelpers: the registry’s helper gives the credentials, and a push with them succeeds', async () => {
    const env = await config({ credHelpers: { [registry.host]: 'niatest' }, auths: { [registry.host]: { auth: Buffer.from('someone:else').toString('base64') } } });
    const credentials = resolveCredentials({ registry: registry.host, username: 'ignored', password: '', githubToken: '', env });
    // The helper wins over the auths entry, as with docker.
    expect(credentials).toEqual({ username: 'tester', password: 's3cret-pass' });
    expect((await calls()).at(-1)).toBe(`niatest ${registry.host}`);
    const client = new RegistryClient({ registry: registry.host, repository: 'helpers/app', insecure: true, credentials, logger: quiet });
    const result = await pushImage({ source: await detectSource(archive.path), client, tags: ['latest'], logger: quiet, tmpDir: work });
    const inspected = JSON.parse(await skopeo(['inspect', `docker://${registry.host}/helpers/app:latest`], { creds: 'tester:s3cret-pass' })) as { Digest: string };
    expect(inspected.Digest).toBe(result.digest);
    client.close();
  });

  it('credsStore: the default helper, for a registry with neither a helper nor an auths entry of its own', async () => {
    const env = await config({ credsStore: 'niastore', credHelpers: { 'other.example': 'niatest' }, auths: { [registry.host]: {} } });
    expect(fromDockerConfig(registry.host, env)).toEqual({ username: 'tester', password: 's3cret-pass' });
    expect((await calls()).at(-1)).toBe(`niastore ${registry.host}`);
    // The registry's own auths entry, when it holds credentials, comes before the default helper.
    const inline = await config({ credsStore: 'niastore', auths: { [registry.host]: { auth: Buffer.from('inline:pw').toString('base64') } } });
    expect(fromDockerConfig(registry.host, inline)).toEqual({ username: 'inline', password: 'pw' });
  });

  it('a helper that has no credentials for the registry means anonymous; Docker Hub is asked under its v1 URL', async () => {
    const env = await config({ credsStore: 'niastore' });
    expect(fromDockerConfig('r.example.com', env)).toBeUndefined();
    expect((await calls()).at(-1)).toBe('niastore r.example.com');
    expect(fromDockerConfig('docker.io', env)).toBeUndefined();
    expect((await calls()).at(-1)).toBe('niastore https://index.docker.io/v1/');
  });

  it('fails in one line, never showing a secret, when the helper is missing, fails or answers garbage', async () => {
    const missing = await config({ credHelpers: { [registry.host]: 'nosuchhelper' } });
    expect(() => fromDockerConfig(registry.host, missing)).toThrow(
      new RegExp(`^credHelpers of .*config\\.json for ${registry.host.replace(/\./g, '\\.')} names credential helper nosuchhelper, but docker-credential-nosuchhelper is not on PATH$`),
    );
    const broken = await config({ credsStore: 'niabroken' });
    expect(() => fromDockerConfig(registry.host, broken)).toThrow(/^docker-credential-niabroken get \(credsStore of .*config\.json\) failed with exit code 4: the keychain is locked$/);
    const garbage = await config({ credsStore: 'niagarbage' });
    expect(() => fromDockerConfig(registry.host, garbage)).toThrow(/^docker-credential-niagarbage get \(credsStore of .*config\.json\) answered with something that is not JSON$/);
    const evil = await config({ credsStore: '../../bin/sh' });
    expect(() => fromDockerConfig(registry.host, evil)).toThrow(/names credential helper "\.\.\/\.\.\/bin\/sh", which is not a helper name$/);
  });
});
