// Grammar of registry hosts, repository paths and tags (distribution/reference), checked before anything runs.
import { InputError } from '../inputs/index.js';

export interface ImageName {
  /** The registry as the user wrote it (and as it appears in outputs), e.g. ghcr.io or localhost:5000. */
  registry: string;
  /** The host the API is served from (Docker Hub's API is not on docker.io). */
  apiHost: string;
  /** The repository path, e.g. owner/app (library/app on Docker Hub for a one-part name). */
  repository: string;
}

const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]{1,5})?$/;
const IPV6 = /^\[[0-9a-fA-F:.]+\](?::[0-9]{1,5})?$/;
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DOCKER_HUB = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

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

export function parseImageName(registry: string, image: string): ImageName {
  validateRegistry(registry);
  if (image === '') throw new InputError('image', 'expected a repository path such as owner/app, got an empty value');
  if (image.includes(':') || image.includes('@')) {
    throw new InputError('image', `expected a repository path without a tag or digest (use the tags input), got "${image}"`);
  }
  const parts = image.split('/');
  if (parts[0] === registry && parts.length > 1) {
    throw new InputError('image', `expected the repository path without the registry (it is set by the registry input), got "${image}"`);
  }
  const bad = parts.find((p) => !COMPONENT.test(p));
  if (bad !== undefined) {
    throw new InputError(
      'image',
      `expected lower-case path components of letters, digits and . _ - separated by /, got "${image}" (bad part "${bad}")`,
    );
  }
  if (image.length > 255) throw new InputError('image', `expected at most 255 characters, got ${image.length}`);
  const hub = DOCKER_HUB.has(registry);
  return {
    registry,
    apiHost: hub ? 'registry-1.docker.io' : registry,
    repository: hub && parts.length === 1 ? `library/${image}` : image,
  };
}

export function validateTag(tag: string, input = 'tags'): void {
  if (tag.length > 128) throw new InputError(input, `a tag has at most 128 characters; "${tag.slice(0, 20)}…" has ${tag.length}`);
  if (!TAG.test(tag)) {
    throw new InputError(input, `expected tags of letters, digits, _ . - (not starting with . or -), got "${tag}"`);
  }
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
  if (value.includes('@')) {
    throw new InputError(input, `expected a tag or repository:tag, not a digest, got "${value}"`);
  }
  const colon = value.lastIndexOf(':');
  const slash = value.lastIndexOf('/');
  if (colon < 0 || colon < slash) {
    if (slash >= 0) throw new InputError(input, `expected repository:tag for another repository (the tag is missing), got "${value}"`);
    validateReuseTag(value, value);
    return { repository: target.repository, tag: value };
  }
  const path = value.slice(0, colon);
  const tag = value.slice(colon + 1);
  validateReuseTag(tag, value);
  const parts = path.split('/');
  const first = parts[0]!;
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['))) {
    throw new InputError(input, `expected a repository of the same registry without its host (layers are mounted within one registry), got "${value}"`);
  }
  const bad = parts.find((p) => !COMPONENT.test(p));
  if (bad !== undefined) {
    throw new InputError(
      input,
      `expected repository:tag with a lower-case repository path of letters, digits and . _ - separated by /, got "${value}" (bad part "${bad}")`,
    );
  }
  if (path.length > 255) throw new InputError(input, `expected a repository path of at most 255 characters, got ${path.length} in "${value}"`);
  const hub = DOCKER_HUB.has(target.registry);
  return { repository: hub && parts.length === 1 ? `library/${path}` : path, tag };
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
 * and a one-part name there is `library/<name>`. A first part is a registry when it has a `.` or a `:`,
 * or is `localhost`. Grouped by repository, in the order of first appearance.
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
  if (value.includes('@')) throw new InputError('tags', `${expected} (a digest cannot be a tag)`);
  const slash = value.lastIndexOf('/');
  const colon = value.lastIndexOf(':');
  if (colon < 0 || colon < slash) throw new InputError('tags', `${expected} (the tag is missing)`);
  const path = value.slice(0, colon);
  const tag = value.slice(colon + 1);
  validateTag(tag);
  const parts = path.split('/');
  const first = parts[0]!;
  const hasRegistry = parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['));
  const registry = hasRegistry ? first : 'docker.io';
  const image = hasRegistry ? parts.slice(1).join('/') : path;
  try {
    return [parseImageName(registry, image), tag];
  } catch (error) {
    throw new InputError('tags', `${expected}: ${error instanceof Error ? error.message.replace(/^input \w+: /, '') : String(error)}`);
  }
}
