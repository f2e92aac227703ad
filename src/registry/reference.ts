// Grammar of registry hosts, repository paths, tags and digests (distribution/reference), checked before
// anything runs. One function takes a reference apart and decides whether its first part is a registry
// host (splitReference); the image, tags, reuse-tags and merge inputs all read references through it, and
// differ only in what they accept and what a missing registry means.
import { InputError } from '../inputs/index.js';
import { DOCKER_HUB_API, isDockerHub } from './constants.js';

export interface ImageName {
  /** The registry as the user wrote it (and as it appears in outputs), e.g. ghcr.io or localhost:5000. */
  registry: string;
  /** The host the API is served from (Docker Hub's API is not on docker.io). */
  apiHost: string;
  /** The repository path, e.g. owner/app (library/app on Docker Hub for a one-part name). */
  repository: string;
}

/** A reference taken apart, nothing checked nor normalised: `[registry/]repository[:tag][@digest]`. */
export interface ReferenceParts {
  /** The first path component, when it is a registry host (see isRegistryHost). */
  registry?: string;
  /** The repository path as written (no library/ added); empty for `@sha256:…`. */
  repository: string;
  tag?: string;
  digest?: string;
}

const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]{1,5})?$/;
const IPV6 = /^\[[0-9a-fA-F:.]+\](?::[0-9]{1,5})?$/;
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
/** The only digest this action reads or writes: what every registry and the OCI spec require. */
const DIGEST = /^sha256:[0-9a-f]{64}$/;
/** A merge entry that starts like this is a digest, never `repository:tag` (algorithms the OCI spec registers). */
const DIGEST_ALGORITHM = /^(?:sha256|sha384|sha512):/i;

/**
 * Docker's rule (distribution/reference, splitDockerDomain): the first of several path components is a
 * registry host when it has a `.` or a `:` (a port, an IPv6 address) or is `localhost`; otherwise the
 * whole path is the repository.
 */
export function isRegistryHost(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost';
}

/**
 * `[registry/]repository[:tag][@digest]` → its parts, by Docker's rule for the registry (isRegistryHost).
 * The digest is what follows the first `@`; the tag what follows the last `:` after the last `/`.
 */
export function splitReference(value: string): ReferenceParts {
  const at = value.indexOf('@');
  const name = at >= 0 ? value.slice(0, at) : value;
  const colon = name.lastIndexOf(':');
  const tagged = colon > name.lastIndexOf('/');
  const path = tagged ? name.slice(0, colon) : name;
  const slash = path.indexOf('/');
  const first = slash >= 0 ? path.slice(0, slash) : undefined;
  const hasRegistry = first !== undefined && isRegistryHost(first);
  return {
    ...(hasRegistry ? { registry: first } : {}),
    repository: hasRegistry ? path.slice(slash + 1) : path,
    ...(tagged ? { tag: name.slice(colon + 1) } : {}),
    ...(at >= 0 ? { digest: value.slice(at + 1) } : {}),
  };
}

/** Whether two registry hosts are one registry: host names compare case-insensitively, and Docker Hub has three. */
export function sameRegistry(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase() || (isDockerHub(a) && isDockerHub(b));
}

/** A repository path as the registry knows it: a one-part name on Docker Hub is library/<name>. */
function inRegistry(registry: string, path: string): string {
  return isDockerHub(registry) && !path.includes('/') ? `library/${path}` : path;
}

/** The first path component that is not lower-case letters, digits and . _ - (undefined: all are). */
function badPart(path: string): string | undefined {
  return path.split('/').find((p) => !COMPONENT.test(p));
}

export function validateRegistry(registry: string): void {
  if (/^[a-z]+:\/\//i.test(registry)) {
    throw new InputError('registry', `expected a host name such as ghcr.io or localhost:5000, without a scheme, got "${registry}"`);
  }
  if (registry.includes('/')) {
    throw new InputError('registry', `expected a host name without a path (put the path in image), got "${registry}"`);
  }
  if (!HOST.test(registry) && !IPV6.test(registry)) {
    throw new InputError('registry', `expected a host name such as ghcr.io or localhost:5000, got "${registry}"`);
  }
}

/** The registry and image inputs → the repository. The image is a path, without registry, tag or digest. */
export function parseImageName(registry: string, image: string): ImageName {
  validateRegistry(registry);
  if (image === '') throw new InputError('image', 'expected a repository path such as owner/app, got an empty value');
  const parts = splitReference(image);
  // A registry host in front is refused when it is this registry, or cannot be a path component anyway
  // (a port): `my.org/app` stays a valid path in another registry (GitLab groups may have dots).
  if (parts.registry !== undefined && (sameRegistry(parts.registry, registry) || !COMPONENT.test(parts.registry))) {
    throw new InputError('image', `expected the repository path without the registry (it is set by the registry input), got "${image}"`);
  }
  if (parts.tag !== undefined || parts.digest !== undefined) {
    throw new InputError('image', `expected a repository path without a tag or digest (use the tags input), got "${image}"`);
  }
  return imageName(registry, image);
}

/** A repository path of `registry`, checked and normalised; errors name the image input. */
function imageName(given: string, path: string): ImageName {
  // Host names are case-insensitive: LOCALHOST:5000 and localhost:5000 are one registry (its
  // credentials, its insecure setting, its repositories).
  const registry = given.toLowerCase();
  const bad = badPart(path);
  if (bad !== undefined) {
    throw new InputError(
      'image',
      `expected lower-case path components of letters, digits and . _ - separated by /, got "${path}" (bad part "${bad}")`,
    );
  }
  if (path.length > 255) throw new InputError('image', `expected at most 255 characters, got ${path.length}`);
  const hub = isDockerHub(registry);
  return { registry, apiHost: hub ? DOCKER_HUB_API : registry, repository: inRegistry(registry, path) };
}

export function validateTag(tag: string, input = 'tags'): void {
  if (tag.length > 128) throw new InputError(input, `a tag has at most 128 characters; "${tag.slice(0, 20)}…" has ${tag.length}`);
  if (!TAG.test(tag)) {
    throw new InputError(input, `expected tags of letters, digits, _ . - (not starting with . or -), got "${tag}"`);
  }
}

/** A digest this action accepts: sha256 and 64 lower-case hex digits, exactly (upper case is another string to a registry). */
export function validateDigest(digest: string, input: string, value: string): void {
  if (!DIGEST.test(digest)) throw new InputError(input, `expected a digest sha256:<64 lower-case hex digits>, got "${value}"`);
}

/** A reuse tag: a tag of the target repository, or `repository:tag` of another repository of the same registry. */
export interface ReuseRef {
  repository: string;
  tag: string;
}

/**
 * Parses the reuse-tags input against the target image: `latest` is a tag of the target repository;
 * `mono/base:latest` a tag of another repository of the same registry (its layers are mounted, not
 * uploaded). A registry host in front (`ghcr.io/x:y`, `localhost:5000/x:y`) is refused: mounts only work
 * within one registry. Duplicates are dropped, order kept.
 */
export function parseReuseTags(values: string[], target: ImageName): ReuseRef[] {
  const seen = new Set<string>();
  const refs: ReuseRef[] = [];
  for (const value of values) {
    const ref = parseReuseTag(value, target);
    const key = `${ref.repository}:${ref.tag}`;
    if (seen.has(key)) continue;
    seen.add(key);
    refs.push(ref);
  }
  return refs;
}

function parseReuseTag(value: string, target: ImageName): ReuseRef {
  const input = 'reuse-tags';
  const parts = splitReference(value);
  if (parts.digest !== undefined) {
    throw new InputError(input, `expected a tag or repository:tag, not a digest, got "${value}"`);
  }
  if (parts.tag === undefined) {
    if (value.includes('/')) throw new InputError(input, `expected repository:tag for another repository (the tag is missing), got "${value}"`);
    validateReuseTag(value, value);
    return { repository: target.repository, tag: value };
  }
  validateReuseTag(parts.tag, value);
  if (parts.registry !== undefined) {
    throw new InputError(input, `expected a repository of the same registry without its host (layers are mounted within one registry), got "${value}"`);
  }
  const bad = badPart(parts.repository);
  if (bad !== undefined) {
    throw new InputError(
      input,
      `expected repository:tag with a lower-case repository path of letters, digits and . _ - separated by /, got "${value}" (bad part "${bad}")`,
    );
  }
  if (parts.repository.length > 255) {
    throw new InputError(input, `expected a repository path of at most 255 characters, got ${parts.repository.length} in "${value}"`);
  }
  return { repository: inRegistry(target.registry, parts.repository), tag: parts.tag };
}

function validateReuseTag(tag: string, value: string): void {
  if (tag.length > 128) throw new InputError('reuse-tags', `a tag has at most 128 characters; "${value.slice(0, 40)}…" has one of ${tag.length}`);
  if (!TAG.test(tag)) {
    throw new InputError('reuse-tags', `expected tags of letters, digits, _ . - (not starting with . or -), or repository:tag, got "${value}"`);
  }
}

/** The reuse tags that are tags of `repository` itself. */
export function tagsOf(refs: ReuseRef[], repository: string): string[] {
  return refs.filter((r) => r.repository === repository).map((r) => r.tag);
}

/** One repository the image goes to, with its tags. */
export interface TagTarget {
  target: ImageName;
  tags: string[];
}

/**
 * The tags input: bare tags go to the default repository (the registry and image inputs); full
 * references `[registry/]repository:tag` (docker/metadata-action's `tags` output) go where they say, with
 * Docker's normalisation: no registry part means Docker Hub (`docker.io`, API on registry-1.docker.io),
 * and a one-part name there is `library/<name>`. Which first part is a registry: splitReference.
 * Grouped by repository, in the order of first appearance.
 */
export function parseTagTargets(values: string[], defaultTarget: () => ImageName): TagTarget[] {
  const groups = new Map<string, TagTarget>();
  const add = (target: ImageName, tag: string): void => {
    const key = `${target.apiHost}/${target.repository}`;
    const group = groups.get(key) ?? { target, tags: [] };
    if (!group.tags.includes(tag)) group.tags.push(tag);
    groups.set(key, group);
  };
  for (const value of values) {
    if (!value.includes('/') && !value.includes(':') && !value.includes('@')) {
      validateTag(value);
      add(defaultTarget(), value);
      continue;
    }
    add(...parseReference(value));
  }
  return [...groups.values()];
}

/** `[registry/]repository:tag` → the repository and the tag; errors name the tags input and the value. */
export function parseReference(value: string): [ImageName, string] {
  const expected = `expected a tag, or a reference [registry/]repository:tag, got "${value}"`;
  const parts = splitReference(value);
  if (parts.digest !== undefined) throw new InputError('tags', `${expected} (a digest cannot be a tag)`);
  if (parts.tag === undefined) throw new InputError('tags', `${expected} (the tag is missing)`);
  validateTag(parts.tag);
  try {
    const registry = parts.registry ?? 'docker.io';
    validateRegistry(registry);
    return [imageName(registry, parts.repository), parts.tag];
  } catch (error) {
    throw new InputError('tags', `${expected}: ${error instanceof Error ? error.message.replace(/^input \w+: /, '') : String(error)}`);
  }
}

/** One entry of the merge input: an image in the index's registry, by digest or by tag. */
export interface MergeEntry {
  /** As given, for messages and the report. */
  entry: string;
  /** Its repository: the index's own, or another of the same registry (then its blobs are mounted). */
  repository: string;
  /** The digest or the tag to read it by. */
  reference: string;
}

/**
 * An entry of the merge input, against the repository the index is made in (`home`): `sha256:…` or a
 * bare tag is an image of that repository; `[registry/]repository:tag` or `…@sha256:…` one of the
 * repository named, which must be in the same registry (no registry part: the index's registry, as for
 * reuse-tags). A digest must be sha256 and 64 lower-case hex digits; a reference with neither tag nor
 * digest names no image and is refused, as is another registry (the index can only point at manifests
 * its own registry holds). Errors name the merge input, in one line.
 */
export function parseMergeEntry(entry: string, home: { registry: string; repository: string }): MergeEntry {
  const input = 'merge';
  if (!entry.includes('/') && !entry.includes('@') && DIGEST_ALGORITHM.test(entry)) {
    validateDigest(entry, input, entry);
    return { entry, repository: home.repository, reference: entry };
  }
  const parts = splitReference(entry);
  if (parts.registry !== undefined && !sameRegistry(parts.registry, home.registry)) {
    throw new InputError(
      input,
      `"${entry}" is in registry ${parts.registry}, not ${home.registry}: an index can only list images of its own registry (copy the image there first)`,
    );
  }
  if (parts.digest !== undefined) validateDigest(parts.digest, input, entry);
  else if (parts.tag !== undefined) validateTag(parts.tag, input);
  else if (parts.registry === undefined && !parts.repository.includes('/')) {
    validateTag(entry, input);
    return { entry, repository: home.repository, reference: entry };
  } else {
    throw new InputError(input, `expected a digest, a tag, repository:tag or repository@sha256:…, got "${entry}" (it names neither a tag nor a digest)`);
  }
  const reference = parts.digest ?? parts.tag!;
  // `@sha256:…` alone: this repository, as a bare digest is.
  if (parts.repository === '' && parts.digest !== undefined && parts.registry === undefined) return { entry, repository: home.repository, reference };
  const bad = badPart(parts.repository);
  if (bad !== undefined) {
    throw new InputError(input, `expected a lower-case repository path of letters, digits and . _ - separated by /, got "${entry}" (bad part "${bad}")`);
  }
  if (parts.repository.length > 255) throw new InputError(input, `expected a repository path of at most 255 characters, got ${parts.repository.length} in "${entry}"`);
  return { entry, repository: inRegistry(home.registry, parts.repository), reference };
}
