// What real registries answer where Distribution does not, played by the fault proxy's dialects
// (support/registry.ts) in front of the real Distribution 2.8 registry, one test per behaviour: a refused
// cross-repository mount, ECR's immutable tags, a repository that does not exist (ECR, a Harbor project),
// ghcr.io's 403 secondary rate limit and Docker Hub's spent pull quota, ACR identity tokens and a credential
// helper asked again, Quay's refusal of Docker manifests in an OCI index, a referrers API answering 405 for
// an index, and OCI-Chunk-Min-Length. Every result is checked in the registry itself (skopeo, plain HTTP
// reads) and in the proxy's request log.
import { chmod, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import * as http from 'node:http';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dialect, skopeo, startFaultProxy, startOrigin, startRegistry, startSplitRegistry, type FaultProxy, type FaultRule, type TestRegistry, withFaultProxy } from '../support/registry.js';
import type { ImageInput } from '../../src/image/types.js';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/client.js';
import { connectRegistries } from '../../src/registry/connect.js';
import { resolveCredentialSource } from '../../src/registry/credentials.js';
import { sha256Digest } from '../../src/hash.js';
import { MergeError, mergeToAll } from '../../src/registry/merge.js';
import { pushImage, type PushResult } from '../../src/registry/push.js';
import { parseImageName, parseReuseTags } from '../../src/registry/reference.js';
import { attachToRepository, fallbackTag, listReferrers } from '../../src/registry/referrers.js';
import { retagIfPushed } from '../../src/registry/shortcut.js';
import type { PushTarget } from '../../src/registry/targets.js';
import { QuotaSpentError } from '../../src/registry/transport/error.js';
import { MediaTypes, type Descriptor } from '../../src/registry/types.js';

/** A logger that keeps its lines. */
function recorder() {
  const lines: string[] = [];
  return { lines, logger: { debug: () => {}, info: (m: string) => void lines.push(m), warning: (m: string) => void lines.push(m) } };
}
const quiet = recorder().logger;
const fast = { attempts: 4, baseMs: 20, maxMs: 2_000, budgetMs: 20_000 };
let work: string;
let registry: TestRegistry;
const clients: RegistryClient[] = [];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'nia-dialects-'));
  registry = await startRegistry({});
});
afterAll(async () => {
  for (const c of clients) c.close();
  await registry?.stop();
});

function client(host: string, repository: string, more: Partial<RegistryClientOptions> = {}): RegistryClient {
  const c = new RegistryClient({ registry: host, repository, insecure: true, logger: quiet, retry: fast, ...more });
  clients.push(c);
  return c;
}

const withProxy = <T>(rules: FaultRule[], run: (p: FaultProxy) => Promise<T>): Promise<T> => withFaultProxy(registry, rules, run);

/** Bytes that do not compress: the same for the same seed. */
function noise(size: number, seed: string): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(seed).digest();
  for (let at = 0; at < size; at += block.length) {
    block.copy(out, at);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

/** An image of the given layers (each its own bytes), for `architecture`. */
function image(layers: Buffer[], architecture = 'amd64'): ImageInput {
  return {
    description: `test image (${layers.length} layers)`,
    async readLayers(visit) {
      for (const [i, bytes] of layers.entries()) await visit({ name: `layer ${i}`, seekable: true, diffIDHint: sha256Digest(bytes) }, () => Readable.from([bytes]));
      return {
        order: layers.map((_, i) => `layer ${i}`),
        config: (diffIDs) => Buffer.from(JSON.stringify({ architecture, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: diffIDs } })),
      };
    },
  };
}

async function push(c: RegistryClient, input: ImageInput, tags: string[], more: { reuse?: string[]; annotations?: Record<string, string>; logger?: typeof quiet } = {}): Promise<PushResult> {
  const reuseTags = more.reuse ? parseReuseTags(more.reuse, parseImageName(c.registry, c.repository)) : [];
  return pushImage({ input, client: c, tags, byDigest: tags.length === 0, reuseTags, logger: more.logger ?? quiet, tmpDir: work, ...(more.annotations ? { annotations: more.annotations } : {}) });
}

const ACCEPT = [MediaTypes.ociManifest, MediaTypes.ociIndex, MediaTypes.dockerManifest, MediaTypes.dockerManifestList].join(', ');

/** A manifest in the registry itself (plain HTTP, not through the proxy): its bytes and their digest. */
async function manifestAt(repository: string, ref: string): Promise<{ digest: string; bytes: Buffer }> {
  const res = await fetch(`http://${registry.host}/v2/${repository}/manifests/${ref}`, { headers: { accept: ACCEPT } });
  expect(res.status, `${repository}:${ref}`).toBe(200);
  const bytes = Buffer.from(await res.arrayBuffer());
  return { digest: sha256Digest(bytes), bytes };
}

const digestAt = async (repository: string, tag: string): Promise<string> => (await manifestAt(repository, tag)).digest;

/** skopeo copies the image out of the registry (checking every blob's digest) and agrees on its digest. */
async function pulls(repository: string, tag: string, digest: string, more: { creds?: string; host?: string } = {}): Promise<void> {
  const ref = `docker://${more.host ?? registry.host}/${repository}:${tag}`;
  const inspected = JSON.parse(await skopeo(['inspect', ref], { creds: more.creds })) as { Digest: string };
  expect(inspected.Digest).toBe(digest);
  const dir = await mkdtemp(join(work, 'pull-'));
  await skopeo(['copy', ref, `oci:${dir}:x`], { creds: more.creds });
}

const count = (log: string[], re: RegExp): number => log.filter((l) => re.test(l)).length;

describe('1. a refused cross-repository mount (Harbor)', () => {
  const shared = [noise(200_000, 'mount-shared-1'), noise(150_000, 'mount-shared-2')];
  beforeAll(async () => {
    await push(client(registry.host, 'mono/base'), image([...shared, noise(5_000, 'mount-base-own')]), ['latest']);
  });

  it.each([401, 403, 404] as const)('answered %i: the layers are uploaded instead, one info line, the push goes on', async (status) => {
    await withProxy(dialect(registry, 'mount-refused', { status }), async (proxy) => {
      const { lines, logger } = recorder();
      const repository = `mono/app-${status}`;
      const c = client(proxy.host, repository, { logger });
      const result = await push(c, image([...shared, noise(40_000, `mount-app-${status}`)]), ['latest'], { reuse: ['mono/base:latest'], logger });
      expect(result.layers.map((l) => l.action)).toEqual(['uploaded', 'uploaded', 'uploaded']);
      const mounts = count(proxy.log, new RegExp(`^POST /v2/${repository}/blobs/uploads/\\?mount=sha256%3A[0-9a-f]{64}&from=mono%2Fbase → ${status}$`));
      // A refusal of the source repository (401, 403) is not asked again; a 404 may be about one blob.
      expect(mounts).toBe(status === 404 ? 2 : 1);
      expect(count(lines, /refused to mount blobs from mono\/base/)).toBe(status === 404 ? 0 : 1);
      if (status !== 404) expect(lines.find((l) => /refused to mount/.test(l))).toMatch(new RegExp(`^registry ${proxy.host} refused to mount blobs from mono/base into ${repository} \\(${status}: [A-Z_]+: .+\\): they are uploaded instead$`));
      expect(proxy.forwarded.PATCH).toBe(result.bytesUploaded);
      await pulls(repository, 'latest', result.digest);
    });
  });
});

describe('2. ECR immutable tags', () => {
  const layers = [noise(60_000, 'ecr-one')];

  it('a tag already naming the digest is left as it is (one HEAD, no PUT); a new tag is PUT; moving a tag fails in one line naming the setting', async () => {
    const first = await push(client(registry.host, 'ecr/app'), image(layers), ['latest']);
    await withProxy(dialect(registry, 'ecr-immutable'), async (proxy) => {
      const again = await push(client(proxy.host, 'ecr/app'), image(layers), ['latest', 'v1']);
      expect(again.digest).toBe(first.digest);
      expect(count(proxy.log, /^HEAD \/v2\/ecr\/app\/manifests\/latest → 200$/)).toBe(1);
      expect(count(proxy.log, /^PUT \/v2\/ecr\/app\/manifests\/latest /)).toBe(0);
      expect(count(proxy.log, /^HEAD \/v2\/ecr\/app\/manifests\/v1 → 404$/)).toBe(1);
      expect(count(proxy.log, /^PUT \/v2\/ecr\/app\/manifests\/v1 → 201$/)).toBe(1);
      // The dialect is real: the same PUT under the existing tag is refused.
      const direct = await fetch(`http://${proxy.host}/v2/ecr/app/manifests/latest`, { method: 'PUT', headers: { 'content-type': again.manifest.mediaType }, body: again.manifest.bytes });
      expect(direct.status).toBe(400);
      expect(((await direct.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('TAG_INVALID');

      const other = push(client(proxy.host, 'ecr/app'), image([noise(60_000, 'ecr-two')]), ['latest']);
      await expect(other).rejects.toThrow(
        new RegExp(`^registry ${proxy.host} will not move tag latest of ecr/app to sha256:[0-9a-f]{64}: the repository has tag immutability on, and latest holds ${first.digest} \\(push under a tag not used yet, or turn tag immutability off; 400 TAG_INVALID\\)$`),
      );
      expect(await digestAt('ecr/app', 'latest')).toBe(first.digest);
      expect(await digestAt('ecr/app', 'v1')).toBe(first.digest);
    });
  });

  it('a tag PUT whose answer was lost is sent again and refused as immutable: the tag already names the image, so the push succeeds', async () => {
    const rules = [{ method: 'PUT', path: /\/manifests\/v7$/, dropAnswer: true, times: 1 }, ...dialect(registry, 'ecr-immutable')];
    await withProxy(rules, async (proxy) => {
      const pushed = await push(client(proxy.host, 'ecr/lost'), image([noise(20_000, 'ecr-lost')]), ['v7']);
      expect(count(proxy.log, /^PUT \/v2\/ecr\/lost\/manifests\/v7 /)).toBe(2); // the first's answer lost, the second refused
      expect(await digestAt('ecr/lost', 'v7')).toBe(pushed.digest);
    });
  });

  it('a push-only policy (HEAD of a manifest refused with 403, no body): the tag is PUT at once, nothing retried', async () => {
    await withProxy([{ method: 'HEAD', path: /\/manifests\//, status: 403, times: 1000 }], async (proxy) => {
      const pushed = await push(client(proxy.host, 'ecr/push-only'), image([noise(20_000, 'ecr-push-only')]), ['latest']);
      expect(count(proxy.log, /^HEAD \/v2\/ecr\/push-only\/manifests\/latest → 403$/)).toBe(1);
      expect(count(proxy.log, /^PUT \/v2\/ecr\/push-only\/manifests\/latest → 201$/)).toBe(1);
      expect(await digestAt('ecr/push-only', 'latest')).toBe(pushed.digest);
    });
  });

  it('the registry shortcut re-tags without a PUT (nor a HEAD) under the tag it was found under', async () => {
    const producer = { 'org.example.producer': 'derivation-1' };
    const made = await push(client(registry.host, 'ecr/shortcut'), image([noise(30_000, 'ecr-shortcut')]), ['latest'], { annotations: producer });
    await withProxy(dialect(registry, 'ecr-immutable'), async (proxy) => {
      const targets: PushTarget[] = [{ client: client(proxy.host, 'ecr/shortcut'), tags: ['latest', 'v2'], reuse: [], known: [] }];
      const shortcut = await retagIfPushed(targets, producer, quiet);
      expect(shortcut.results?.[0]?.digest).toBe(made.digest);
      expect(proxy.log.filter((l) => /manifests\/latest/.test(l))).toEqual(['GET /v2/ecr/shortcut/manifests/latest → 200']);
      expect(proxy.log.filter((l) => /manifests\/v2/.test(l))).toEqual(['HEAD /v2/ecr/shortcut/manifests/v2 → 404', 'PUT /v2/ecr/shortcut/manifests/v2 → 201']);
      expect(await digestAt('ecr/shortcut', 'v2')).toBe(made.digest);
    });
  });
});

describe('3. the target repository checked before the build', () => {
  const inputs = (host: string, image: string) => ({
    registry: host,
    image,
    tags: ['latest'],
    reuseTags: [],
    username: '',
    password: '',
    githubToken: '',
    push: true,
    insecure: true,
    insecureRegistries: [],
    pushByDigest: false,
  });
  const connect = (host: string, image: string) => connectRegistries(inputs(host, image), { logger: quiet, onSecret: () => {} });

  it('costs one POST and one DELETE on a registry that takes the push', async () => {
    await withProxy([], async (proxy) => {
      const to = await connect(proxy.host, 'check/fine');
      to.targets[0]!.client.close();
      expect(proxy.log).toEqual(['GET /v2/ → 200', 'POST /v2/check/fine/blobs/uploads/ → 202', expect.stringMatching(/^DELETE \/v2\/check\/fine\/blobs\/uploads\/[0-9a-f-]+\?_state=.* → 204$/)]);
    });
  });

  it('a later repository that fails the check closes the connections of those already reached', async () => {
    await withProxy([], async (first) => {
      await withProxy(dialect(registry, 'ecr-missing-repo', { repository: 'team/missing' }), async (second) => {
        const twoRepositories = { ...inputs(first.host, 'check/first'), tags: ['latest', `${second.host}/team/missing:latest`], insecureRegistries: [second.host] };
        await expect(connectRegistries(twoRepositories, { logger: quiet, onSecret: () => {} })).rejects.toThrow(/has no repository team\/missing/);
        expect(first.log).toContain('POST /v2/check/first/blobs/uploads/ → 202');
        // The first repository's client was closed: its kept-alive connection is gone.
        const deadline = Date.now() + 2_000;
        while ((await first.connections()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        expect(await first.connections()).toBe(0);
        expect(await second.connections()).toBe(0);
      });
    });
  });

  it('a missing ECR repository fails at once, saying how to create it', async () => {
    await withProxy(dialect(registry, 'ecr-missing-repo', { repository: 'team/missing' }), async (proxy) => {
      await expect(connect(proxy.host, 'team/missing')).rejects.toThrow(
        `registry ${proxy.host} has no repository team/missing (ECR creates none on push: create it first, e.g. aws ecr create-repository --repository-name team/missing; ` +
          `404: NAME_UNKNOWN: The repository with name 'team/missing' does not exist in the registry with id '123456789012')`,
      );
      expect(proxy.log).toEqual(['GET /v2/ → 200', 'POST /v2/team/missing/blobs/uploads/ → 404']);
    });
  });

  it('a missing Harbor project (401) and a name the registry refuses (400 NAME_INVALID) fail at once, in one line', async () => {
    await withProxy(dialect(registry, 'harbor-missing-project', { repository: 'noproject/app' }), async (proxy) => {
      await expect(connect(proxy.host, 'noproject/app')).rejects.toThrow(
        new RegExp(`^registry ${proxy.host} refuses pushes to noproject/app \\(401: UNAUTHORIZED: authentication required\\): no credentials were found for it \\(set the username and password inputs\\), and its project or namespace must exist$`),
      );
    });
    await withProxy([{ method: 'POST', path: /^\/v2\/a\/b\/c\/d\//, status: 400, code: 'NAME_INVALID', message: 'invalid repository name', times: 1_000_000 }], async (proxy) => {
      await expect(connect(proxy.host, 'a/b/c/d')).rejects.toThrow(
        `registry ${proxy.host} refuses the repository name a/b/c/d (400: NAME_INVALID: invalid repository name): check the image and tags inputs; some registries take only so many path components (Docker Hub: namespace/name)`,
      );
    });
  });
});

describe('4. rate limits', () => {
  it('ghcr.io: a 403 secondary rate limit is retried as a rate limit, after its Retry-After, and the push goes on', async () => {
    await withProxy(dialect(registry, 'ghcr-secondary-rate-limit', { every: 4, retryAfter: '1' }), async (proxy) => {
      const { lines, logger } = recorder();
      const c = client(proxy.host, 'limits/ghcr', { logger });
      const result = await push(c, image([noise(80_000, 'ghcr-1'), noise(50_000, 'ghcr-2')]), ['latest'], { logger });
      const refused = count(proxy.log, / → 403$/);
      expect(refused).toBeGreaterThanOrEqual(3);
      expect(c.stats.causes).toEqual({ '403': refused });
      // Retried, every one: the first after its Retry-After (1 s), the others after the backoff.
      expect(count(lines, /answered 403 Forbidden to .*retrying in /)).toBe(refused);
      expect(count(lines, /answered 403 Forbidden to .*retrying in 1\.0 s /)).toBe(1);
      expect(count(lines, /: DENIED: You have exceeded a secondary rate limit\. .* \(a rate limit, not a refusal: retried\); retrying in /)).toBeGreaterThanOrEqual(1);
      await pulls('limits/ghcr', 'latest', result.digest);
    });
  });

  it('Docker Hub: a spent pull quota fails the read at once with the reset time; reuse is skipped and the push goes on', async () => {
    await push(client(registry.host, 'limits/hub'), image([noise(20_000, 'hub-old')]), ['latest']);
    await withProxy(dialect(registry, 'hub-rate-limit', { reset: 3600 }), async (proxy) => {
      const c = client(proxy.host, 'limits/hub');
      const read = await c.getManifest('latest').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(read).toBeInstanceOf(QuotaSpentError);
      expect((read as Error).message).toMatch(
        /^registry .* answered 429 Too Many Requests to GET manifest latest: TOOMANYREQUESTS: You have reached your pull rate limit\..* \(its rate limit is spent: 0 of 100 left per 6 h, resets in 1 h \(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\); not retried: log in to it for a higher limit, or run again after then\)$/,
      );
      expect(count(proxy.log, /^GET \/v2\/limits\/hub\/manifests\/latest → 429$/)).toBe(1);
      // Pushing reads nothing Docker Hub counts but the reuse tag's manifest: that read fails once, and the
      // layers are uploaded instead.
      const result = await push(c, image([noise(20_000, 'hub-new')]), ['latest']);
      expect(count(proxy.log, /^GET \/v2\/limits\/hub\/manifests\/latest → 429$/)).toBe(2);
      expect(await digestAt('limits/hub', 'latest')).toBe(result.digest);
    });
  });

  it('Docker Hub: a quota that resets within seconds is waited for, as a Retry-After', async () => {
    const rules = dialect(registry, 'hub-rate-limit', { reset: 1 }).map((r) => ({ ...r, times: 1 }));
    await withProxy(rules, async (proxy) => {
      const { lines, logger } = recorder();
      const got = await client(proxy.host, 'limits/hub', { logger }).getManifest('latest');
      expect(got?.digest).toBe(await digestAt('limits/hub', 'latest'));
      expect(proxy.log.filter((l) => /manifests\/latest/.test(l))).toEqual(['GET /v2/limits/hub/manifests/latest → 429', 'GET /v2/limits/hub/manifests/latest → 200']);
      expect(count(lines, /retrying in 1\.0 s/)).toBe(1);
    });
  });
});

describe('5. credentials', () => {
  describe('(a) an ACR identity token in the Docker config', () => {
    let tokenRegistry: TestRegistry;
    beforeAll(async () => (tokenRegistry = await startRegistry({ auth: 'token' })));
    afterAll(async () => tokenRegistry?.stop());

    const jwt = (claims: object) => `${Buffer.from('{"alg":"RS256","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2lnbmF0dXJl`;
    const aadToken = jwt({ iss: 'https://sts.windows.net/72f988bf-0000-0000-0000-000000000000/', tid: '72f988bf-0000-0000-0000-000000000000', aud: 'https://management.azure.com/' });
    const acrRefresh = jwt({ iss: 'Azure Container Registry', aud: 'nia-registry', grant_type: 'refresh_token' });

    /**
     * ACR's token server, standing in: POST /oauth2/exchange takes the Azure AD token and gives the ACR
     * refresh token; POST /oauth2/token takes that refresh token (grant_type=refresh_token) and gives an
     * access token the registry takes (one of the test token server's). Records every form it got.
     */
    async function acr(forms: Record<string, string>[]) {
      const read = (req: http.IncomingMessage): Promise<URLSearchParams> =>
        new Promise((resolve) => {
          const chunks: Buffer[] = [];
          req.on('data', (c: Buffer) => chunks.push(c));
          req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
        });
      const answer = (res: http.ServerResponse, status: number, body: object): void => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      return startOrigin({
        handle: (req, res) => {
          void read(req).then(async (form) => {
            forms.push({ path: req.url ?? '', method: req.method ?? '', ...Object.fromEntries(form) });
            if (req.method === 'POST' && req.url === '/oauth2/exchange') {
              const ok = form.get('grant_type') === 'access_token' && form.get('access_token') === aadToken && form.get('tenant') === '72f988bf-0000-0000-0000-000000000000' && form.get('service') === 'nia-registry';
              return ok ? answer(res, 200, { refresh_token: acrRefresh }) : answer(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'bad exchange' }] });
            }
            if (req.method === 'POST' && req.url === '/oauth2/token' && form.get('grant_type') === 'refresh_token' && form.get('refresh_token') === acrRefresh) {
              const url = new URL(tokenRegistry.realm!);
              url.searchParams.set('service', form.get('service') ?? '');
              for (const scope of (form.get('scope') ?? '').split(' ').filter(Boolean)) url.searchParams.append('scope', scope);
              const got = await fetch(url, { headers: { authorization: `Basic ${Buffer.from('tester:s3cret-pass').toString('base64')}` } });
              const { token } = (await got.json()) as { token: string };
              return answer(res, 200, { access_token: token, expires_in: 600 });
            }
            answer(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'not an ACR token request' }] });
          });
        },
      });
    }

    it.each([
      ['an Azure AD token: exchanged at /oauth2/exchange, then a refresh_token grant', true],
      ['an ACR refresh token (az acr login): a refresh_token grant at once', false],
    ])('%s; the push succeeds', async (_name, aad) => {
      const forms: Record<string, string>[] = [];
      const standIn = await acr(forms);
      const front = await startSplitRegistry(tokenRegistry, { realm: () => `${standIn.origin}/oauth2/token` });
      try {
        const dir = await mkdtemp(join(work, 'docker-'));
        const entry = { auth: Buffer.from('00000000-0000-0000-0000-000000000000:').toString('base64'), identitytoken: aad ? aadToken : acrRefresh };
        await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { [front.host]: entry } }));
        const { credentials, reload } = resolveCredentialSource({ registry: front.host, username: '', password: '', githubToken: '', env: { DOCKER_CONFIG: dir } });
        expect(credentials).toEqual({ username: '00000000-0000-0000-0000-000000000000', password: '', identityToken: entry.identitytoken });
        expect(reload).toBeUndefined();
        const secrets: string[] = [];
        const c = client(front.host, `acr/app-${aad}`, { credentials, onSecret: (s) => void secrets.push(s) });
        const result = await push(c, image([noise(30_000, `acr-${aad}`)]), ['latest']);
        const exchanges = forms.filter((f) => f.path === '/oauth2/exchange');
        expect(exchanges).toEqual(aad ? [{ path: '/oauth2/exchange', method: 'POST', grant_type: 'access_token', access_token: aadToken, tenant: '72f988bf-0000-0000-0000-000000000000', service: 'nia-registry' }] : []);
        const grants = forms.filter((f) => f.path === '/oauth2/token');
        expect(grants.length).toBeGreaterThanOrEqual(1);
        for (const g of grants) {
          expect(g).toMatchObject({ method: 'POST', grant_type: 'refresh_token', refresh_token: acrRefresh, service: 'nia-registry', client_id: 'nix-image-action' });
          expect(g.scope!.split(' ')).toContain(`repository:acr/app-${aad}:pull,push`);
        }
        // The refresh token got from the exchange is masked like any secret.
        if (aad) expect(secrets).toContain(acrRefresh);
        await pulls(`acr/app-${aad}`, 'latest', result.digest, { creds: 'tester:s3cret-pass', host: tokenRegistry.host });
      } finally {
        await front.stop();
        await standIn.stop();
      }
    });
  });

  describe('(b) a credential helper whose answer stops working mid-job', () => {
    let tokenRegistry: TestRegistry;
    let bin: string;
    beforeAll(async () => {
      tokenRegistry = await startRegistry({ auth: 'token', users: { tester: 'first-pass' } });
      bin = await mkdtemp(join(work, 'bin-'));
      // Answers the password in secret.txt, logging each call.
      await writeFile(
        join(bin, 'docker-credential-niarotate'),
        `#!/bin/sh\nread -r server\necho "$server" >> "${join(bin, 'calls.log')}"\nprintf '{"ServerURL":"%s","Username":"tester","Secret":"%s"}\\n' "$server" "$(cat "${join(bin, 'secret.txt')}")"\n`,
      );
      await chmod(join(bin, 'docker-credential-niarotate'), 0o755);
    });
    afterAll(async () => tokenRegistry?.stop());

    const calls = async (): Promise<number> => (await readFile(join(bin, 'calls.log'), 'utf8').catch(() => '')).split('\n').filter(Boolean).length;

    async function helperClient(proxy: FaultProxy, repository: string, logger = quiet): Promise<RegistryClient> {
      const dir = await mkdtemp(join(work, 'docker-'));
      await writeFile(join(dir, 'config.json'), JSON.stringify({ credHelpers: { [proxy.host]: 'niarotate' } }));
      const { credentials, reload } = resolveCredentialSource({ registry: proxy.host, username: '', password: '', githubToken: '', env: { DOCKER_CONFIG: dir, PATH: `${bin}:${process.env.PATH ?? ''}` } });
      expect(reload).toBeTypeOf('function');
      return client(proxy.host, repository, { credentials, logger, ...(reload ? { reloadCredentials: reload } : {}) });
    }

    it('is asked again once when the registry rejects what worked, and the push goes on with the new answer', async () => {
      await writeFile(join(bin, 'secret.txt'), 'first-pass');
      const proxy = await startFaultProxy(tokenRegistry, [{ method: 'HEAD', path: /\/blobs\/sha256:/, status: 401, times: 1 }]);
      try {
        const { lines, logger } = recorder();
        const c = await helperClient(proxy, 'helper/app', logger);
        await c.ping();
        const before = await calls();
        // The password changes at the registry and in the helper's store (a token that expired and was renewed).
        tokenRegistry.users.tester = 'second-pass';
        await writeFile(join(bin, 'secret.txt'), 'second-pass');
        const result = await push(c, image([noise(25_000, 'helper-1')]), ['latest'], { logger });
        expect((await calls()) - before).toBe(1);
        expect(count(lines, /rejected the credentials that had worked \(401\): asked their credential helper again$/)).toBe(1);
        await pulls('helper/app', 'latest', result.digest, { creds: 'tester:second-pass', host: tokenRegistry.host });
      } finally {
        await proxy.stop();
      }
    });

    it('basic auth: the helper is asked again once when the registry stops taking its password, and the push goes on', async () => {
      // Distribution reads its htpasswd once: the proxy plays the registry whose password changes mid-job.
      const basicRegistry = await startRegistry({ auth: 'htpasswd', users: { tester: 'first-pass' } });
      const basic = (password: string) => `Basic ${Buffer.from(`tester:${password}`).toString('base64')}`;
      let rotated = false;
      const rules: FaultRule[] = [
        // After the change, the old password is refused as Distribution refuses a wrong one...
        { when: (req) => rotated && req.headers.authorization === basic('first-pass'), status: 401, code: 'UNAUTHORIZED', addHeaders: { 'www-authenticate': 'Basic realm="basic-realm"' }, times: 1e9 },
        // ...and the new one taken (sent on to the registry as the password it knows).
        { when: (req) => req.headers.authorization === basic('second-pass'), rewriteHeaders: (h) => ({ ...h, authorization: basic('first-pass') }), times: 1e9 },
      ];
      await writeFile(join(bin, 'secret.txt'), 'first-pass');
      const proxy = await startFaultProxy(basicRegistry, rules);
      try {
        const { lines, logger } = recorder();
        const c = await helperClient(proxy, 'helper/basic', logger);
        await c.ping();
        const before = await calls();
        const seenBefore = proxy.log.length;
        rotated = true;
        await writeFile(join(bin, 'secret.txt'), 'second-pass');
        const result = await push(c, image([noise(25_000, 'helper-basic')]), ['latest'], { logger });
        expect((await calls()) - before).toBe(1);
        expect(count(lines, /rejected the credentials that had worked \(401\): asked their credential helper again$/)).toBe(1);
        // After the change, one request was refused; every other one carried the new password.
        expect(proxy.log.slice(seenBefore).filter((l) => l.endsWith('→ 401'))).toHaveLength(1);
        await pulls('helper/basic', 'latest', result.digest, { creds: 'tester:first-pass', host: basicRegistry.host });
      } finally {
        await proxy.stop();
        await basicRegistry.stop();
      }
    });

    it('a helper that still answers what the registry rejects is asked once, and the push fails in one line', async () => {
      await writeFile(join(bin, 'secret.txt'), tokenRegistry.users.tester!);
      const proxy = await startFaultProxy(tokenRegistry, [{ method: 'HEAD', path: /\/blobs\/sha256:/, status: 401, times: 1 }]);
      try {
        const c = await helperClient(proxy, 'helper/stale');
        await c.ping();
        const before = await calls();
        tokenRegistry.users.tester = 'third-pass';
        await expect(push(c, image([noise(25_000, 'helper-2')]), ['latest'])).rejects.toThrow(/^registry .* rejected the credentials of tester: .*401.*$/);
        expect((await calls()) - before).toBe(1);
      } finally {
        await proxy.stop();
      }
    });
  });
});

/** Pushes a Docker (schema 2) image of one layer for `architecture`, by digest; its descriptor. */
async function pushDocker(c: RegistryClient, architecture: string, seed: string): Promise<Descriptor> {
  const layer = noise(10_000, seed);
  // Not gzip in fact: Distribution does not look inside blobs, and nothing here unpacks it.
  const layerDigest = await c.uploadBlobBytes(layer);
  const config = Buffer.from(JSON.stringify({ architecture, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [layerDigest] } }));
  const configDigest = await c.uploadBlobBytes(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaTypes.dockerManifest,
      config: { mediaType: MediaTypes.dockerConfig, digest: configDigest, size: config.length },
      layers: [{ mediaType: MediaTypes.dockerLayerGzip, digest: layerDigest, size: layer.length }],
    }),
  );
  const digest = await c.putManifest(sha256Digest(manifest), manifest, MediaTypes.dockerManifest);
  return { mediaType: MediaTypes.dockerManifest, digest, size: manifest.length };
}

describe('6. Quay: no Docker manifest in an OCI index', () => {
  it('Docker images are merged into a Docker manifest list, which the registry takes; an OCI index of them it refuses', async () => {
    const home = client(registry.host, 'quay/app');
    const amd = await pushDocker(home, 'amd64', 'quay-amd');
    const arm = await pushDocker(home, 'arm64', 'quay-arm');
    await withProxy(dialect(registry, 'quay-index'), async (proxy) => {
      const { lines, logger } = recorder();
      const targets: PushTarget[] = [{ client: client(proxy.host, 'quay/app'), tags: ['latest'], reuse: [], known: [] }];
      const merged = await mergeToAll(targets, [amd.digest, arm.digest], { 'org.opencontainers.image.source': 'https://github.com/acme/app' }, logger);
      expect(merged.index.mediaType).toBe(MediaTypes.dockerManifestList);
      expect(lines).toContain('merge: the images are Docker manifests, so the index is a Docker manifest list, which has no annotations: org.opencontainers.image.source left out');
      const stored = await manifestAt('quay/app', 'latest');
      expect(stored.digest).toBe(merged.index.digest);
      const raw = JSON.parse(stored.bytes.toString('utf8')) as { mediaType: string; manifests: { digest: string; mediaType: string }[]; annotations?: unknown };
      expect(raw.mediaType).toBe(MediaTypes.dockerManifestList);
      expect(raw.annotations).toBeUndefined();
      expect(raw.manifests.map((m) => [m.digest, m.mediaType])).toEqual([[amd.digest, MediaTypes.dockerManifest], [arm.digest, MediaTypes.dockerManifest]]);
      // skopeo, an independent reader, takes the list.
      const resolved = JSON.parse(await skopeo(['inspect', `docker://${registry.host}/quay/app:latest`])) as { Digest: string };
      expect(resolved.Digest).toBe(merged.index.digest);
      // What the dialect refuses: the same images in an OCI index.
      const oci = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: raw.manifests }));
      const refused = await fetch(`http://${proxy.host}/v2/quay/app/manifests/oci`, { method: 'PUT', headers: { 'content-type': MediaTypes.ociIndex }, body: oci });
      expect(refused.status).toBe(400);
    });
  });

  it('a mix of OCI and Docker images is refused before anything is written, naming them', async () => {
    const home = client(registry.host, 'quay/mixed');
    const docker = await pushDocker(home, 'arm64', 'quay-mixed-arm');
    const oci = await push(home, image([noise(8_000, 'quay-mixed-amd')]), []);
    await withProxy(dialect(registry, 'quay-index'), async (proxy) => {
      const targets: PushTarget[] = [{ client: client(proxy.host, 'quay/mixed'), tags: ['latest'], reuse: [], known: [] }];
      const error = await mergeToAll(targets, [oci.digest, docker.digest], undefined, quiet).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(MergeError);
      expect((error as Error).message).toBe(
        `merge: ${oci.digest} is an OCI image and ${docker.digest} a Docker image: one index lists one kind (an OCI index, or a Docker manifest list), and an image cannot change kind without its digest changing: push them all as one kind`,
      );
      expect(proxy.log.filter((l) => l.startsWith('PUT '))).toEqual([]);
    });
  });
});

describe('7. referrers: a registry answering 405 for an index subject', () => {
  it('falls back to the sha256-<digest> tag, which lists the referrer', async () => {
    const home = client(registry.host, 'refs/multi');
    const amd = await push(home, image([noise(9_000, 'refs-amd')], 'amd64'), []);
    const arm = await push(home, image([noise(9_000, 'refs-arm')], 'arm64'), []);
    const merged = await mergeToAll([{ client: home, tags: ['latest'], reuse: [], known: [] }], [amd.digest, arm.digest], undefined, quiet);
    expect(merged.index.mediaType).toBe(MediaTypes.ociIndex);
    const subject = { mediaType: merged.index.mediaType, digest: merged.index.digest, size: merged.index.bytes.length };
    await withProxy(dialect(registry, 'referrers-405'), async (proxy) => {
      const c = client(proxy.host, 'refs/multi');
      const doc = Buffer.from('{"bomFormat":"CycloneDX"}');
      const [attached] = await attachToRepository(c, subject, [{ artifactType: 'application/vnd.cyclonedx+json', bytes: doc, title: 'sbom.cdx.json' }]);
      expect(attached?.via).toBe('fallback tag');
      expect(count(proxy.log, new RegExp(`^GET /v2/refs/multi/referrers/${subject.digest} → 405$`))).toBe(1);
      // The registry itself: the fallback tag's index lists the referrer, whose subject is the index.
      const listed = JSON.parse((await manifestAt('refs/multi', fallbackTag(subject.digest))).bytes.toString('utf8')) as { manifests: { digest: string; artifactType: string }[] };
      expect(listed.manifests).toEqual([expect.objectContaining({ digest: attached!.digest, artifactType: 'application/vnd.cyclonedx+json' })]);
      const referrer = JSON.parse((await home.getManifest(attached!.digest))!.bytes.toString('utf8')) as { subject: Descriptor };
      expect(referrer.subject).toEqual(subject);
      expect((await listReferrers(c, subject)).map((r) => r.digest)).toEqual([attached!.digest]);
    });
  });
});

describe('8. OCI-Chunk-Min-Length', () => {
  /** PATCHes by upload session (its path), in order, each with its size and Content-Range. */
  const sessions = (proxy: FaultProxy) => {
    const by = new Map<string, { bytes: number; range?: string }[]>();
    for (const r of proxy.requests.filter((q) => q.method === 'PATCH')) {
      const session = r.url.split('?')[0]!;
      by.set(session, [...(by.get(session) ?? []), { bytes: r.bytes, ...(r.contentRange ? { range: r.contentRange } : {}) }]);
    }
    return [...by.values()];
  };

  it.each([
    ['chunks of the limit the client knows, none under the minimum', 65_536, 100_000, 100_000],
    ['the minimum when it is over that limit', 150_000, 100_000, 150_000],
  ])('%s', async (_name, min, limit, chunk) => {
    await withProxy(dialect(registry, 'chunk-min-length', { min }), async (proxy) => {
      const repository = `chunks/app-${min}`;
      const result = await push(client(proxy.host, repository, { chunkLimit: limit }), image([noise(420_000, `chunk-big-${min}`), noise(30_000, `chunk-small-${min}`)]), ['latest']);
      const blobs = [result.config, ...result.layers];
      const all = sessions(proxy);
      expect(all.map((s) => s.reduce((n, p) => n + p.bytes, 0)).sort((a, b) => a - b)).toEqual(blobs.map((b) => b.size).sort((a, b) => a - b));
      for (const patches of all) {
        let at = 0;
        for (const [i, p] of patches.entries()) {
          // Every chunk but the last is exactly `chunk` bytes (so at least the minimum), in order.
          if (i < patches.length - 1) expect(p.bytes).toBe(chunk);
          else expect(p.bytes).toBeLessThanOrEqual(chunk);
          expect(p.range).toBe(`${at}-${at + p.bytes - 1}`);
          at += p.bytes;
        }
      }
      const big = all.find((s) => s.length > 1)!;
      expect(big.length).toBe(Math.ceil(result.layers[0]!.size / chunk));
      await pulls(repository, 'latest', result.digest);
    });
  });
});
