// What registries answer in their own way, decided without a registry: a 403 that is a rate limit, a
// spent quota (Docker Hub's ratelimit-* fields), the kind of index a merge writes (Quay), and identity
// tokens in the Docker config (ACR). The same behaviours against the real registry: integration/dialects.test.ts.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { scratch } from '../support/tmp.js';
import { fromDockerConfig } from '../../src/registry/credentials.js';
import { indexOf, MergeError, type MergedImage } from '../../src/registry/merge.js';
import { AuthError, QuotaSpentError, RateLimitError, httpError, parseQuota } from '../../src/registry/transport/error.js';
import { isRetryable } from '../../src/registry/transport/retry.js';
import { MediaTypes } from '../../src/registry/types.js';

const body = (code: string, message: string) => Buffer.from(JSON.stringify({ errors: [{ code, message }] }));
const NOW = Date.UTC(2025, 0, 1, 12, 0, 0);

describe('rate limits', () => {
  it('a 403 saying it is a rate limit (ghcr.io) is retried like a 429, after its Retry-After; any other 403 is a refusal', () => {
    const limited = httpError({ registry: 'ghcr.io', what: 'PATCH blob x', status: 403, statusText: 'Forbidden', body: body('DENIED', 'You have exceeded a secondary rate limit.'), retryAfter: '7' });
    expect(limited).toBeInstanceOf(RateLimitError);
    expect(isRetryable(limited)).toBe(true);
    expect(limited.retryAfterMs).toBe(7000);
    expect(limited.message).toBe('registry ghcr.io answered 403 Forbidden to PATCH blob x: DENIED: You have exceeded a secondary rate limit. (a rate limit, not a refusal: retried)');
    const denied = httpError({ registry: 'ghcr.io', what: 'PATCH blob x', status: 403, body: body('DENIED', 'permission_denied: write_package') });
    expect(denied).toBeInstanceOf(AuthError);
    expect(isRetryable(denied)).toBe(false);
  });

  it('reads ratelimit-remaining, ratelimit-limit (count;w=window) and ratelimit-reset (seconds, or a Unix time)', () => {
    expect(parseQuota({ 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '0;w=21600' })).toEqual({ remaining: 0, limit: 100, windowS: 21600 });
    expect(parseQuota({ 'ratelimit-remaining': '76;w=21600', 'ratelimit-reset': '120' })).toEqual({ remaining: 76, windowS: 21600, resetMs: 120_000 });
    expect(parseQuota({ 'ratelimit-remaining': '0', 'ratelimit-reset': String(NOW / 1000 + 90) }, NOW)).toEqual({ remaining: 0, resetMs: 90_000 });
    expect(parseQuota({})).toBeUndefined();
  });

  it('a spent quota fails at once with when it resets; one resetting within 30 s is waited for', () => {
    const headers = { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '0;w=21600' };
    const spent = httpError({ registry: 'registry-1.docker.io', what: 'GET manifest latest', status: 429, statusText: 'Too Many Requests', body: body('TOOMANYREQUESTS', 'You have reached your pull rate limit.'), headers: { ...headers, 'ratelimit-reset': '5400' }, now: NOW });
    expect(spent).toBeInstanceOf(QuotaSpentError);
    expect(isRetryable(spent)).toBe(false);
    expect(spent.message).toBe(
      'registry registry-1.docker.io answered 429 Too Many Requests to GET manifest latest: TOOMANYREQUESTS: You have reached your pull rate limit. ' +
        '(its rate limit is spent: 0 of 100 left per 6 h, resets in 1.5 h (2025-01-01T13:30:00Z); not retried: log in to it for a higher limit, or run again after then)',
    );
    const unknown = httpError({ registry: 'registry-1.docker.io', what: 'GET manifest latest', status: 429, body: Buffer.alloc(0), headers, now: NOW });
    expect(unknown.message).toMatch(/\(its rate limit is spent: 0 of 100 left per 6 h, resets within 6 h; not retried/);
    const soon = httpError({ registry: 'registry-1.docker.io', what: 'GET manifest latest', status: 429, body: Buffer.alloc(0), headers: { ...headers, 'ratelimit-reset': '12' }, now: NOW });
    expect(soon).not.toBeInstanceOf(QuotaSpentError);
    expect(isRetryable(soon)).toBe(true);
    expect(soon.retryAfterMs).toBe(12_000);
    // Quota left: an ordinary 429.
    const left = httpError({ registry: 'r', what: 'GET manifest latest', status: 429, body: Buffer.alloc(0), headers: { 'ratelimit-remaining': '3;w=60' } });
    expect(left).not.toBeInstanceOf(QuotaSpentError);
    expect(isRetryable(left)).toBe(true);
  });
});

describe('the index a merge writes', () => {
  const entry = (ref: string, mediaType: string, architecture: string): MergedImage => ({
    ref,
    repository: 'acme/app',
    descriptor: { mediaType, digest: `sha256:${ref.padEnd(64, '0')}`, size: 500, platform: { os: 'linux', architecture } },
  });
  const annotations = { 'org.opencontainers.image.source': 'https://github.com/acme/app' };

  it('OCI images: an OCI image index, with the annotations', () => {
    const index = indexOf([entry('a', MediaTypes.ociManifest, 'amd64'), entry('b', MediaTypes.ociManifest, 'arm64')], annotations);
    expect(index.mediaType).toBe(MediaTypes.ociIndex);
    const parsed = JSON.parse(index.bytes.toString('utf8')) as { mediaType: string; annotations?: unknown; manifests: { mediaType: string }[] };
    expect(parsed.mediaType).toBe(MediaTypes.ociIndex);
    expect(parsed.annotations).toEqual(annotations);
  });

  it('Docker images: a Docker manifest list, which has no annotations (said in one line)', () => {
    const lines: string[] = [];
    const index = indexOf([entry('a', MediaTypes.dockerManifest, 'amd64'), entry('b', MediaTypes.dockerManifest, 'arm64')], annotations, { debug: () => {}, info: (m) => void lines.push(m), warning: () => {} });
    expect(index.mediaType).toBe(MediaTypes.dockerManifestList);
    const parsed = JSON.parse(index.bytes.toString('utf8')) as Record<string, unknown>;
    expect(parsed).toEqual({ schemaVersion: 2, mediaType: MediaTypes.dockerManifestList, manifests: expect.any(Array) });
    expect(lines).toEqual(['merge: the images are Docker manifests, so the index is a Docker manifest list, which has no annotations: org.opencontainers.image.source left out']);
  });

  it('a mix: refused, naming which is which', () => {
    expect(() => indexOf([entry('a', MediaTypes.ociManifest, 'amd64'), entry('b', MediaTypes.dockerManifest, 'arm64'), entry('c', MediaTypes.dockerManifest, 's390x')])).toThrow(
      new MergeError('merge: a is an OCI image and b, c Docker images: one index lists one kind (an OCI index, or a Docker manifest list), and an image cannot change kind without its digest changing: push them all as one kind'),
    );
  });
});

describe('identity tokens in the Docker config', () => {
  const config = (auths: object): NodeJS.ProcessEnv => {
    const dir = mkdtempSync(join(scratch, 'docker-'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ auths }));
    return { DOCKER_CONFIG: dir };
  };

  it('an identitytoken comes before a password, with the user of its auth (ACR: the all-zero user)', () => {
    const acr = config({ 'acme.azurecr.io': { auth: Buffer.from('00000000-0000-0000-0000-000000000000:').toString('base64'), identitytoken: 'eyJ.refresh.token' } });
    expect(fromDockerConfig('acme.azurecr.io', acr)).toEqual({ username: '00000000-0000-0000-0000-000000000000', password: '', identityToken: 'eyJ.refresh.token' });
    const bare = config({ 'r.example.com': { identitytoken: 'opaque' } });
    expect(fromDockerConfig('r.example.com', bare)).toEqual({ username: '<token>', password: '', identityToken: 'opaque' });
  });

  it('an auth entry with an empty password and no identity token gives no credentials', () => {
    expect(fromDockerConfig('r.example.com', config({ 'r.example.com': { auth: Buffer.from('someone:').toString('base64') } }))).toBeUndefined();
  });
});
