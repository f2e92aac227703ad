// Pure pieces of the registry side: reference grammar, credentials, challenges, retry policy, error lines,
// origins, aborts, and the concurrency limiter.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseImageName, parseTagTargets, validateTag } from '../../src/registry/reference.js';
import { fromDockerConfig, resolveCredentials } from '../../src/registry/credentials.js';
import { parseChallenge } from '../../src/registry/transport/challenge.js';
import { backoff, isRetryable, withRetry } from '../../src/registry/transport/retry.js';
import { sameOrigin } from '../../src/registry/transport/origin.js';
import { limiter } from '../../src/registry/limit.js';
import { AuthError, NetworkError, RegistryError, httpError, parseRetryAfter } from '../../src/registry/transport/error.js';

describe('parseImageName', () => {
  it('keeps the registry for outputs and finds the API host', () => {
    expect(parseImageName('ghcr.io', 'octo-org/app')).toEqual({ registry: 'ghcr.io', apiHost: 'ghcr.io', repository: 'octo-org/app' });
    expect(parseImageName('localhost:5000', 'a/b/c')).toEqual({ registry: 'localhost:5000', apiHost: 'localhost:5000', repository: 'a/b/c' });
    expect(parseImageName('docker.io', 'nginx')).toEqual({ registry: 'docker.io', apiHost: 'registry-1.docker.io', repository: 'library/nginx' });
    expect(parseImageName('docker.io', 'me/app').repository).toBe('me/app');
    expect(parseImageName('[::1]:5000', 'x/y').apiHost).toBe('[::1]:5000');
    expect(parseImageName('r.example.com', 'a__b/c.d-e').repository).toBe('a__b/c.d-e');
  });

  it.each([
    ['https://ghcr.io', 'x/y', /^input registry: .*without a scheme/],
    ['ghcr.io/owner', 'x/y', /^input registry: .*without a path/],
    ['bad_host!', 'x/y', /^input registry: /],
    ['ghcr.io', '', /^input image: .*empty/],
    ['ghcr.io', 'Owner/App', /^input image: .*lower-case/],
    ['ghcr.io', 'owner//app', /^input image: /],
    ['ghcr.io', 'owner/app:v1', /^input image: .*without a tag/],
    ['ghcr.io', 'ghcr.io/owner/app', /^input image: .*without the registry/],
    ['ghcr.io', '-x/app', /^input image: /],
  ])('rejects registry %s image %s', (registry, image, error) => {
    expect(() => parseImageName(registry, image)).toThrow(error);
  });
});

describe('validateTag', () => {
  it('accepts the tag grammar and rejects the rest in one line', () => {
    for (const t of ['latest', 'v1.2.3', 'sha-abc_DEF', 'a'.repeat(128), '_x']) expect(() => validateTag(t)).not.toThrow();
    expect(() => validateTag('a'.repeat(129))).toThrow(/^input tags: a tag has at most 128 characters/);
    expect(() => validateTag('bad/tag')).toThrow(/^input tags: .*"bad\/tag"/);
    expect(() => validateTag('.hidden')).toThrow(/^input tags: /);
    expect(() => validateTag('-x')).toThrow(/^input tags: /);
    expect(() => validateTag('bad/tag', 'reuse-tags')).toThrow(/^input reuse-tags: .*"bad\/tag"/);
  });
});

describe('credentials', () => {
  it('prefers the inputs, then github-token for ghcr.io, then the Docker config', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nia-dc-'));
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({ auths: { 'r.example.com': { auth: Buffer.from('bob:pw:with:colons').toString('base64') }, 'https://index.docker.io/v1/': { username: 'hub', password: 'hp' } } }),
    );
    const env = { DOCKER_CONFIG: dir };
    expect(resolveCredentials({ registry: 'r.example.com', username: 'me', password: 'p', githubToken: 't', env })).toEqual({ username: 'me', password: 'p' });
    expect(resolveCredentials({ registry: 'ghcr.io', username: 'me', password: '', githubToken: 't', env })).toEqual({ username: 'me', password: 't' });
    expect(resolveCredentials({ registry: 'r.example.com', username: 'me', password: '', githubToken: 't', env })).toEqual({ username: 'bob', password: 'pw:with:colons' });
    expect(fromDockerConfig('docker.io', env)).toEqual({ username: 'hub', password: 'hp' });
    expect(resolveCredentials({ registry: 'other.io', username: 'me', password: '', githubToken: 't', env })).toBeUndefined();
    expect(() => resolveCredentials({ registry: 'x.io', username: '', password: 'p', githubToken: '', env })).toThrow(/^input username: /);
  });
});

describe('transport pieces', () => {
  it('parses WWW-Authenticate challenges', () => {
    expect(parseChallenge('Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull"')).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://ghcr.io/token', service: 'ghcr.io', scope: 'repository:a/b:pull' },
    });
    expect(parseChallenge('Basic realm="Registry Realm"')).toEqual({ scheme: 'basic', params: { realm: 'Registry Realm' } });
    expect(parseChallenge(undefined)).toBeUndefined();
  });

  it('retries what is worth retrying, with bounded exponential backoff and Retry-After', () => {
    expect(isRetryable(new RegistryError('x', 503))).toBe(true);
    expect(isRetryable(new RegistryError('x', 429))).toBe(true);
    expect(isRetryable(new RegistryError('x', 408))).toBe(true);
    expect(isRetryable(new NetworkError('reset'))).toBe(true);
    expect(isRetryable(new RegistryError('x', 404))).toBe(false);
    expect(isRetryable(new AuthError('x', 401))).toBe(false);
    const policy = { attempts: 5, baseMs: 100, maxMs: 1000 };
    expect(backoff(1, policy, undefined, () => 0)).toBe(50);
    expect(backoff(3, policy, undefined, () => 1)).toBe(400);
    expect(backoff(10, policy, undefined, () => 1)).toBe(1000);
    expect(backoff(1, policy, 300)).toBe(300);
    expect(backoff(1, policy, 60_000)).toBe(1000);
    expect(parseRetryAfter('7')).toBe(7000);
    expect(parseRetryAfter(new Date(Date.now() + 5000).toUTCString())).toBeGreaterThan(3000);
  });

  it('makes registry errors one line with status, code, message and subject', () => {
    const e = httpError({
      registry: 'ghcr.io',
      what: 'PUT manifest latest',
      status: 400,
      statusText: 'Bad Request',
      body: Buffer.from(JSON.stringify({ errors: [{ code: 'MANIFEST_INVALID', message: 'manifest invalid', detail: {} }] })),
    });
    expect(e.message).toBe('registry ghcr.io answered 400 Bad Request to PUT manifest latest: MANIFEST_INVALID: manifest invalid');
    expect(e.code).toBe('MANIFEST_INVALID');
    const html = httpError({ registry: 'r', what: 'HEAD blob x', status: 502, body: Buffer.from('<html>\n<body>Bad gateway</body>\n</html>') });
    expect(html.message).toBe('registry r answered 502 to HEAD blob x: <html> <body>Bad gateway</body> </html>');
    expect(httpError({ registry: 'r', what: 'x', status: 403, body: Buffer.alloc(0) })).toBeInstanceOf(AuthError);
  });

  it('says what to check when a push is denied, in the same line', () => {
    const body = Buffer.from(JSON.stringify({ errors: [{ code: 'DENIED', message: 'permission_denied: write_package' }] }));
    const ghcr = httpError({ registry: 'ghcr.io', what: 'POST blob upload for sha256:ab', status: 403, statusText: 'Forbidden', body });
    expect(ghcr.message).toBe(
      "registry ghcr.io answered 403 Forbidden to POST blob upload for sha256:ab: DENIED: permission_denied: write_package (the token may not write this package: give the job 'permissions: packages: write', and if the package was first pushed from elsewhere, add this repository under the package's Manage Actions access)",
    );
    expect(httpError({ registry: 'r.example', what: 'x', status: 403, body }).message).toMatch(/\(the credentials were accepted but may not push to this repository\)$/);
  });
});

describe('origins', () => {
  it('are scheme, host and port: another port or scheme is another origin, a default port is the same', () => {
    expect(sameOrigin(new URL('https://r.example/v2/a'), new URL('https://r.example:443/v2/b?x=1'))).toBe(true);
    expect(sameOrigin(new URL('https://R.Example/'), new URL('https://r.example/'))).toBe(true);
    expect(sameOrigin(new URL('https://r.example/'), new URL('http://r.example/'))).toBe(false);
    expect(sameOrigin(new URL('https://127.0.0.1:5000/'), new URL('https://127.0.0.1:5001/'))).toBe(false);
    expect(sameOrigin(new URL('https://r.example/'), new URL('https://blobs.r.example/'))).toBe(false);
  });
});

describe('withRetry and aborts', () => {
  it('stops at once when aborted during a wait: no further try, an AbortError', async () => {
    const controller = new AbortController();
    let tries = 0;
    const started = Date.now();
    const run = withRetry(
      'HEAD blob x',
      async () => {
        tries++;
        setTimeout(() => controller.abort(), 20);
        throw new RegistryError('busy', 503);
      },
      { attempts: 5, baseMs: 10_000, maxMs: 10_000 },
      undefined,
      controller.signal,
    );
    await expect(run).rejects.toMatchObject({ name: 'AbortError', message: 'HEAD blob x: aborted' });
    expect(Date.now() - started).toBeLessThan(1000);
    await new Promise((r) => setTimeout(r, 50));
    expect(tries).toBe(1);
  });

  it('does not start when already aborted, and reports an abort rather than the failure it caused', async () => {
    const controller = new AbortController();
    controller.abort();
    let tries = 0;
    await expect(withRetry('x', async () => tries++, { attempts: 3, baseMs: 1, maxMs: 1 }, undefined, controller.signal)).rejects.toMatchObject({ name: 'AbortError' });
    expect(tries).toBe(0);
    const late = new AbortController();
    const run = withRetry(
      'y',
      async () => {
        late.abort();
        throw new NetworkError('socket hang up');
      },
      { attempts: 3, baseMs: 1, maxMs: 1 },
      undefined,
      late.signal,
    );
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
  });
});

describe('limiter', () => {
  const ticks = async (k: number) => {
    for (let i = 0; i < k; i++) await Promise.resolve();
  };
  const random = (k: number) => Math.floor(Math.random() * k);

  /** Many tasks arriving and finishing at random (microtask and timer) moments; the most that ran at once. */
  async function mostAtOnce(n: number, tasks: number): Promise<number> {
    const limit = limiter(n);
    let running = 0;
    let most = 0;
    const all: Promise<void>[] = [];
    for (let i = 0; i < tasks; i++) {
      all.push(
        limit(async () => {
          running++;
          most = Math.max(most, running);
          if (Math.random() < 0.1) await new Promise((r) => setTimeout(r, random(2)));
          else await ticks(random(4));
          running--;
        }),
      );
      await ticks(random(4));
    }
    await Promise.all(all);
    return most;
  }

  it('runs exactly n at once, even with tasks arriving as a slot is handed on', async () => {
    for (let round = 0; round < 5; round++) {
      expect(await mostAtOnce(1, 200)).toBe(1);
      expect(await mostAtOnce(3, 200)).toBe(3);
    }
  });

  it('runs waiting tasks in order and passes results and failures through', async () => {
    const limit = limiter(1);
    const order: number[] = [];
    const results = await Promise.allSettled(
      [0, 1, 2, 3].map((i) =>
        limit(async () => {
          order.push(i);
          await ticks(2);
          if (i === 2) throw new Error('two');
          return i;
        }),
      ),
    );
    expect(order).toEqual([0, 1, 2, 3]);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual([0, 1, 'two', 3]);
    expect(() => limiter(0)).toThrow(/at least 1/);
  });
});

describe('parseTagTargets: bare tags and full references (docker/metadata-action)', () => {
  const def = () => parseImageName('ghcr.io', 'acme/widget');
  it('groups bare tags and references by repository, with Docker Hub normalised', () => {
    const groups = parseTagTargets(
      ['latest', 'ghcr.io/acme/widget:1.2.3', 'docker.io/acme/widget:1.2.3', 'acme/widget:edge', 'nginx:stable', 'localhost:5000/x/y:z', 'v1'],
      def,
    );
    expect(groups.map((g) => [g.target.registry, g.target.apiHost, g.target.repository, g.tags])).toEqual([
      ['ghcr.io', 'ghcr.io', 'acme/widget', ['latest', '1.2.3', 'v1']],
      ['docker.io', 'registry-1.docker.io', 'acme/widget', ['1.2.3', 'edge']],
      ['docker.io', 'registry-1.docker.io', 'library/nginx', ['stable']],
      ['localhost:5000', 'localhost:5000', 'x/y', ['z']],
    ]);
  });
  it('refuses what is not a tag or a reference, naming the tags input and the value', () => {
    expect(() => parseTagTargets(['ghcr.io/acme/widget'], def)).toThrow('input tags: expected a tag, or a reference [registry/]repository:tag, got "ghcr.io/acme/widget" (the tag is missing)');
    expect(() => parseTagTargets(['ghcr.io/acme/widget@sha256:00'], def)).toThrow(/input tags: .* \(a digest cannot be a tag\)$/);
    expect(() => parseTagTargets(['ghcr.io/Acme/widget:1'], def)).toThrow(/input tags: expected a tag, or a reference \[registry\/\]repository:tag, got "ghcr.io\/Acme\/widget:1": expected lower-case path components/);
    expect(() => parseTagTargets(['ghcr.io/acme/widget:-bad'], def)).toThrow(/^input tags: expected tags of letters/);
  });
  it('needs the image input only for bare tags', () => {
    const none = () => {
      throw new Error('image not needed');
    };
    expect(parseTagTargets(['ghcr.io/a/b:1'], none)).toHaveLength(1);
  });
});
