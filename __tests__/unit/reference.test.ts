// The one reference parser: how a value is taken apart (Docker's rule for the registry part), and how an
// entry of the merge input is read against the index's repository. The tags, reuse-tags and image inputs
// read through the same parser: their cases are in registry.test.ts and reliability.test.ts.
import { describe, expect, it } from 'vitest';
import { isDockerHub } from '../../src/registry/constants.js';
import { parseImageName, parseMergeEntry, parseReuseTags, parseTagTargets, splitReference } from '../../src/registry/reference.js';

const hex = 'ab'.repeat(32);
const digest = `sha256:${hex}`;

describe('splitReference', () => {
  it.each([
    ['v1', { repository: 'v1' }],
    ['app:v1', { repository: 'app', tag: 'v1' }],
    ['other/app:v1', { repository: 'other/app', tag: 'v1' }],
    [`other/app@${digest}`, { repository: 'other/app', digest }],
    [`other/app:v1@${digest}`, { repository: 'other/app', tag: 'v1', digest }],
    ['localhost:5000/app:v1', { registry: 'localhost:5000', repository: 'app', tag: 'v1' }],
    ['localhost/app', { registry: 'localhost', repository: 'app' }],
    ['ghcr.io/o/app', { registry: 'ghcr.io', repository: 'o/app' }],
    ['[::1]:5000/x/y:z', { registry: '[::1]:5000', repository: 'x/y', tag: 'z' }],
    // No `.`, no `:`, not localhost: a path component, not a registry.
    ['mono/base:latest', { repository: 'mono/base', tag: 'latest' }],
    ['localhostx/app', { repository: 'localhostx/app' }],
    [`@${digest}`, { repository: '', digest }],
  ])('%s', (value, parts) => {
    expect(splitReference(value)).toEqual(parts);
  });

  it('is the rule every input follows: a first part with a dot is a registry in tags and reuse-tags alike', () => {
    const target = parseImageName('localhost:5000', 'app');
    expect(parseTagTargets(['my.org/app:v1'], () => target)[0]!.target).toEqual({ registry: 'my.org', apiHost: 'my.org', repository: 'app' });
    expect(() => parseReuseTags(['my.org/app:v1'], target)).toThrow(/^input reuse-tags: expected a repository of the same registry without its host/);
    expect(() => parseImageName('localhost:5000', 'localhost:5000/app')).toThrow(/^input image: .*without the registry/);
    expect(() => parseImageName('docker.io', 'index.docker.io/me/app')).toThrow(/^input image: .*without the registry/);
  });
});

describe('registry hosts', () => {
  it('are one registry whatever their case: LOCALHOST:5000 and localhost:5000 are one target', () => {
    const targets = parseTagTargets(['localhost:5000/app:v1', 'LOCALHOST:5000/app:v2'], () => parseImageName('localhost:5000', 'app'));
    expect(targets).toHaveLength(1);
    expect(targets[0]!.target.registry).toBe('localhost:5000');
    expect(targets[0]!.tags).toEqual(['v1', 'v2']);
  });
});

describe('isDockerHub', () => {
  it('knows Docker Hub by each of its names, in any case', () => {
    for (const h of ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'Docker.IO']) expect(isDockerHub(h)).toBe(true);
    for (const h of ['ghcr.io', 'docker.example.com', 'localhost:5000']) expect(isDockerHub(h)).toBe(false);
  });
});

describe('parseMergeEntry', () => {
  const home = { registry: 'localhost:5000', repository: 'app' };

  it.each([
    ['a bare digest: this repository', digest, { repository: 'app', reference: digest }],
    ['a bare tag: this repository', 'v1', { repository: 'app', reference: 'v1' }],
    ['app@digest: this repository', `app@${digest}`, { repository: 'app', reference: digest }],
    ['app:v1: this repository', 'app:v1', { repository: 'app', reference: 'v1' }],
    ['other/app:v1: another repository, never this one', 'other/app:v1', { repository: 'other/app', reference: 'v1' }],
    ['other/app@digest: another repository', `other/app@${digest}`, { repository: 'other/app', reference: digest }],
    ['this registry named: the repository after it', 'localhost:5000/app:v1', { repository: 'app', reference: 'v1' }],
    ['this registry, another repository', `localhost:5000/other/app@${digest}`, { repository: 'other/app', reference: digest }],
    ['a tag and a digest: the digest', `other/app:v1@${digest}`, { repository: 'other/app', reference: digest }],
  ])('%s', (_, entry, want) => {
    expect(parseMergeEntry(entry, home)).toEqual({ entry, ...want });
  });

  it('normalises a one-part repository on Docker Hub, whichever of its names the index is in', () => {
    expect(parseMergeEntry('nginx:v1', { registry: 'registry-1.docker.io', repository: 'me/app' })).toEqual({ entry: 'nginx:v1', repository: 'library/nginx', reference: 'v1' });
    expect(parseMergeEntry(`docker.io/me/app@${digest}`, { registry: 'registry-1.docker.io', repository: 'me/app' }).repository).toBe('me/app');
  });

  it.each([
    ['sha256:abc', /^input merge: expected a digest sha256:<64 lower-case hex digits>, got "sha256:abc"$/],
    [`sha256:${hex.toUpperCase()}`, /^input merge: expected a digest sha256:<64 lower-case hex digits>/],
    [`SHA256:${hex}`, /^input merge: expected a digest sha256:<64 lower-case hex digits>/],
    [`sha512:${'a'.repeat(128)}`, /^input merge: expected a digest sha256:/],
    [`app@sha256:${hex.toUpperCase()}`, /^input merge: expected a digest sha256:<64 lower-case hex digits>, got "app@sha256:AB/],
    ['other/app@sha256:abc', /^input merge: expected a digest sha256:/],
    ['ghcr.io/o/app', /^input merge: "ghcr.io\/o\/app" is in registry ghcr.io, not localhost:5000: an index can only list images of its own registry/],
    [`ghcr.io/o/app@${digest}`, /^input merge: "ghcr.io\/o\/app@sha256:[0-9a-f]{64}" is in registry ghcr.io, not localhost:5000/],
    ['localhost:5001/app:v1', /^input merge: .* is in registry localhost:5001, not localhost:5000/],
    ['other/app', /^input merge: expected a digest, a tag, repository:tag or repository@sha256:…, got "other\/app" \(it names neither a tag nor a digest\)$/],
    ['Other/App:v1', /^input merge: expected a lower-case repository path .*\(bad part "Other"\)$/],
    ['other/app:-v1', /^input merge: expected tags of letters/],
    ['bad tag!', /^input merge: expected tags of letters/],
  ])('refuses %s in one line naming the merge input', (entry, error) => {
    expect(() => parseMergeEntry(entry, home)).toThrow(error);
    try {
      parseMergeEntry(entry, home);
    } catch (e) {
      expect((e as Error).message).not.toContain('\n');
    }
  });

  it('reads ghcr.io/o/app:v1 as a repository of the index registry when that is ghcr.io', () => {
    expect(parseMergeEntry('ghcr.io/o/app:v1', { registry: 'ghcr.io', repository: 'o/web' })).toEqual({ entry: 'ghcr.io/o/app:v1', repository: 'o/app', reference: 'v1' });
    expect(() => parseMergeEntry('ghcr.io/o/app', { registry: 'ghcr.io', repository: 'o/web' })).toThrow(/it names neither a tag nor a digest/);
  });
});
