// Parses the action's inputs once into a typed object (like docker/build-push-action's context.ts).
// Everything here is syntax: a bad value fails in the first second, before Nix builds anything.
// Registry-specific grammar (image path, tags, reuse-tags, insecure-registries, merge entries) is checked
// by registry/reference.ts from registry/connect.ts, before any request.
import { cacheUrlProblem } from '../nix/cache-url.js';
import { atLeast, DEFAULT_NIX_VERSION, OLDEST_NIX } from '../nix/version.js';
import { COMPRESSION_LEVELS, type Compression } from '../image/compress.js';

export type InstallNix = 'auto' | 'true' | 'false';
/** auto: a recognised dockerTools image's layers are made from the store; archive: always build and read the archive. */
export type LayersFrom = 'auto' | 'archive';
/** `sbom`: the SBOM's format, or false for none. */
export type SbomInput = 'cyclonedx' | 'spdx' | false;

export interface ActionInputs {
  flake: string;
  attr: string;
  buildArgs: string;
  registry: string;
  image: string;
  tags: string[];
  /** Tags whose layers may be reused besides the target tags (may be empty): `tag`, or `repository:tag` of
   *  another repository of the same registry (checked by registry/reference.ts parseReuseTags). */
  reuseTags: string[];
  layersFrom: LayersFrom;
  /** `compression`: gzip or zstd, and the level (its default when not given). */
  compression: Compression;
  username: string;
  password: string;
  githubToken: string;
  push: boolean;
  insecure: boolean;
  /** Other registry hosts allowed plain HTTP and unverified TLS, named explicitly. */
  insecureRegistries: string[];
  cache: boolean;
  cacheKey: string;
  cacheMaxSize: number;
  /** `cache-purge`: a new store cache base deletes the entries it supersedes (REST API, actions: write). */
  cachePurge: boolean;
  installNix: InstallNix;
  nixVersion: string;
  nixInstallUrl: string;
  nixSha256: string;
  extraNixConf: string;
  /** `labels`: merged into the image config's Labels, in order. */
  labels: [string, string][];
  /** `annotations`: on the pushed manifest. */
  annotations: [string, string][];
  /** Push the image under no tag, by its digest only (matrix jobs of a multi-platform image). */
  pushByDigest: boolean;
  /** Images (digests or references) to merge into one multi-platform index; nothing is built. */
  merge: string[];
  /** The SBOM's format; false: none. */
  sbom: SbomInput;
  /** Attach the SBOM and the provenance to the pushed image as OCI referrers. */
  sbomAttach: boolean;
  /** `binary-cache-key`: a Nix secret signing key (`name:base64`, 64 bytes) that signs the saved store
   *  cache; a secret (mask it). '' when not given. */
  binaryCacheKey: string;
  /** `binary-cache-public-key`: public keys (`name:base64`, 32 bytes) a restored store path needs a
   *  signature by. */
  binaryCachePublicKeys: string[];
  /** `binary-cache`: a Nix binary cache URL (s3://, https://, http://, file://) read before the build and
   *  written after it (nix/remote-cache.ts); '' when not given. */
  binaryCache: string;
}

/** A bad input: the message names the input and what is expected. */
export class InputError extends Error {
  constructor(
    readonly input: string,
    message: string,
  ) {
    super(`input ${input}: ${message}`);
    this.name = 'InputError';
  }
}

export type InputReader = (name: string) => string;

/** Reads an input the way @actions/core does: INPUT_<NAME upper-cased, spaces as _>, trimmed. */
export function envInputReader(env: NodeJS.ProcessEnv = process.env): InputReader {
  return (name) => (env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] ?? '').trim();
}

export function parseBoolean(name: string, value: string, fallback: boolean): boolean {
  if (value === '') return fallback;
  // The YAML 1.2 core schema booleans, as core.getBooleanInput accepts them.
  if (['true', 'True', 'TRUE'].includes(value)) return true;
  if (['false', 'False', 'FALSE'].includes(value)) return false;
  throw new InputError(name, `expected true or false, got "${value}"`);
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1000,
  kb: 1000,
  m: 1000 ** 2,
  mb: 1000 ** 2,
  g: 1000 ** 3,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

export function parseSize(name: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(value);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new InputError(name, `expected a size such as 4GiB, 500MiB or a number of bytes, got "${value}"`);
  }
  return Math.floor(Number(m[1]) * unit);
}

/** Tags come one per line or comma-separated; blanks dropped, order kept, duplicates removed. */
export function splitList(value: string): string[] {
  const items = value
    .split(/[\n,]/)
    .map((s) => s.trim())
    .filter((s) => s !== '');
  return [...new Set(items)];
}

/** The official release tarball: its published .sha256 comes from releases.nixos.org over HTTPS. */
export function isOfficialReleaseUrl(url: string): boolean {
  return /^https:\/\/releases\.nixos\.org\/nix\/nix-(\d[\w.+-]*)\/nix-\1-(x86_64|aarch64)-linux\.tar\.xz$/.test(url);
}

/** Why another tarball URL needs nix-sha256 (the InputError of nix-install-url). */
export const CHECKSUM_REQUIRED = 'needs nix-sha256 unless it is the official release URL (a checksum fetched from the same server proves nothing)';

/**
 * `key=value`, one per line (docker/metadata-action's `labels` output as is). Blank lines and lines starting
 * with # are skipped; the value is everything after the first `=`, kept verbatim; a key given twice keeps
 * its last value.
 */
export function parseKeyValues(name: string, value: string): [string, string][] {
  const out = new Map<string, string>();
  for (const [i, raw] of value.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    const key = eq > 0 ? line.slice(0, eq).trim() : '';
    if (key === '' || /\s/.test(key)) throw new InputError(name, `expected key=value on every line, got "${line}" on line ${i + 1}`);
    out.delete(key);
    out.set(key, line.slice(eq + 1).trim());
  }
  return [...out];
}

/** Whether `value` is a Nix key (`name:base64`) of `bytes` bytes; the message never quotes the value. */
function checkNixKey(name: string, value: string, bytes: 32 | 64): string {
  const m = /^([^:\s]+):([A-Za-z0-9+/]+={0,2})$/.exec(value);
  if (!m) throw new InputError(name, 'expected <name>:<base64>, as nix-store --generate-binary-cache-key writes it');
  const length = Buffer.from(m[2]!, 'base64').length;
  if (length !== bytes) throw new InputError(name, `expected a ${bytes === 64 ? 'secret' : 'public'} key of ${bytes} bytes after "${m[1]}:", got ${length}`);
  return value;
}

function oneOf<T extends string>(name: string, value: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new InputError(name, `expected one of ${allowed.join(', ')}, got "${value}"`);
}

/** `gzip` or `zstd`, optionally with a level after a colon (`zstd:3`, `gzip:6`); empty: gzip at its default. */
export function parseCompression(value: string): Compression {
  const m = /^(gzip|zstd)(?::(\d+))?$/.exec(value || 'gzip');
  if (!m) throw new InputError('compression', `expected gzip or zstd, optionally with a level (gzip:6, zstd:9), got "${value}"`);
  const algorithm = m[1] as Compression['algorithm'];
  const { default: fallback, min, max } = COMPRESSION_LEVELS[algorithm];
  const level = m[2] === undefined ? fallback : Number(m[2]);
  if (level < min || level > max) throw new InputError('compression', `${algorithm} levels go from ${min} to ${max}, got "${value}"`);
  return { algorithm, level };
}

/** `nix-version`: a Nix version (MAJOR.MINOR[.PATCH], a `pre…` suffix for a pre-release a nix-install-url
 *  gives), not older than OLDEST_NIX; empty: the default. */
export function parseNixVersion(value: string): string {
  if (value === '') return DEFAULT_NIX_VERSION;
  // MAJOR.MINOR alone is a release too (Nix 2.4 was released as 2.4).
  if (!/^\d+\.\d+(\.\d+)?(pre[0-9A-Za-z_.]*)?$/.test(value)) {
    throw new InputError('nix-version', `expected a Nix version such as ${DEFAULT_NIX_VERSION}, got "${value}"`);
  }
  if (!atLeast(value, OLDEST_NIX)) throw new InputError('nix-version', `expected Nix ${OLDEST_NIX} or newer (the oldest this action supports), got "${value}"`);
  return value;
}

/** Splits build-args like a shell would (quotes and backslashes; no expansion, no shell). */
export function splitArgs(value: string): string[] {
  const args: string[] = [];
  let cur = '';
  let inArg = false;
  let quote: '"' | "'" | undefined;
  let opened = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else cur += c;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === '\\' && i + 1 < value.length && '"\\$`'.includes(value[i + 1]!)) cur += value[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      opened = i;
      inArg = true;
    } else if (c === '\\' && i + 1 < value.length) {
      if (value[i + 1] !== '\n') cur += value[i + 1];
      i++;
      inArg = true;
    } else if (/\s/.test(c)) {
      if (inArg) args.push(cur);
      cur = '';
      inArg = false;
    } else {
      cur += c;
      inArg = true;
    }
  }
  // Where, not what: the value may hold a token (masked only once the inputs are read).
  if (quote) throw new InputError('build-args', `unterminated ${quote} quote (opened at character ${opened + 1} of ${value.length})`);
  if (inArg) args.push(cur);
  return args;
}

/** `build-args`, checked: split as main.ts splits them, so a quote left open fails here, in one line. */
function checkBuildArgs(value: string): string {
  splitArgs(value);
  return value;
}

export function parseInputs(get: InputReader, env: NodeJS.ProcessEnv = process.env): ActionInputs {
  const attr = get('attr');
  if (attr === '') throw new InputError('attr', 'expected the flake attribute that builds the image, e.g. docker');
  if (/\s/.test(attr)) throw new InputError('attr', `expected a flake attribute path without spaces, got "${attr}"`);

  const flake = get('flake') || '.';
  if (flake.includes('#')) {
    throw new InputError('flake', `expected a flake reference without #attribute (use the attr input), got "${flake}"`);
  }

  let image = get('image');
  if (image === '') {
    const repository = env.GITHUB_REPOSITORY ?? '';
    if (repository === '') {
      throw new InputError('image', 'is empty and GITHUB_REPOSITORY is not set: give the repository path, e.g. owner/app');
    }
    image = repository.toLowerCase();
  }

  const tags = splitList(get('tags') || 'latest');
  if (tags.length === 0) throw new InputError('tags', 'expected at least one tag');

  const nixSha256 = get('nix-sha256').toLowerCase();
  if (nixSha256 !== '' && !/^[0-9a-f]{64}$/.test(nixSha256)) {
    throw new InputError('nix-sha256', `expected 64 hexadecimal characters, got "${nixSha256}"`);
  }

  const nixInstallUrl = get('nix-install-url');
  // Never print the URL here: its userinfo may be a token, masked only later.
  if (nixInstallUrl !== '' && nixSha256 === '' && !isOfficialReleaseUrl(nixInstallUrl)) {
    throw new InputError('nix-install-url', CHECKSUM_REQUIRED);
  }

  const push = parseBoolean('push', get('push'), true);
  if (get('merge') !== '' && !push) throw new InputError('merge', 'needs push: true (the index is made in the registry from the images it holds)');
  if (get('merge') !== '' && parseBoolean('push-by-digest', get('push-by-digest'), false)) {
    throw new InputError('merge', 'and push-by-digest: true do not go together (push by digest in the matrix jobs, merge in the job after them)');
  }

  const sbomValue = get('sbom') || 'cyclonedx';
  if (!['cyclonedx', 'spdx', 'false', 'False', 'FALSE'].includes(sbomValue)) throw new InputError('sbom', `expected cyclonedx, spdx or false, got "${sbomValue}"`);
  const sbom: SbomInput = sbomValue === 'cyclonedx' || sbomValue === 'spdx' ? sbomValue : false;
  const sbomAttach = parseBoolean('sbom-attach', get('sbom-attach'), false);
  if (sbomAttach && !push) throw new InputError('sbom-attach', 'needs push: true (the documents are attached to the pushed image)');
  if (sbomAttach && get('merge') !== '') {
    throw new InputError('sbom-attach', 'true and merge do not go together (a merge builds nothing and attaches nothing to the index: attach in the jobs that build the images)');
  }

  const merge = get('merge').split(/\r?\n/).map((l) => l.trim()).filter(Boolean);

  const binaryCache = get('binary-cache');
  if (binaryCache !== '') {
    // Never quotes the URL: it is checked for credentials here.
    const problem = cacheUrlProblem(binaryCache);
    if (problem) throw new InputError('binary-cache', problem);
    if (get('binary-cache-key') === '' && get('binary-cache-public-key') === '') {
      throw new InputError('binary-cache', 'needs binary-cache-public-key (or binary-cache-key): a cache that other jobs write is used only with signatures by a key you name, never trusted as it is');
    }
  }

  return {
    flake,
    attr,
    buildArgs: checkBuildArgs(get('build-args')),
    registry: get('registry') || 'ghcr.io',
    image,
    tags,
    reuseTags: splitList(get('reuse-tags')),
    layersFrom: oneOf('layers-from', get('layers-from') || 'auto', ['auto', 'archive'] as const),
    compression: parseCompression(get('compression')),
    username: get('username'),
    password: get('password'),
    githubToken: get('github-token'),
    push,
    insecure: parseBoolean('insecure', get('insecure'), false),
    // Host names are case-insensitive; registry/reference.ts lower-cases the hosts tags name.
    insecureRegistries: splitList(get('insecure-registries').toLowerCase()),
    cache: parseBoolean('cache', get('cache'), true),
    cacheKey: get('cache-key'),
    cachePurge: parseBoolean('cache-purge', get('cache-purge'), false),
    cacheMaxSize: parseSize('cache-max-size', get('cache-max-size') || '4GiB'),
    installNix: oneOf('install-nix', get('install-nix') || 'auto', ['auto', 'true', 'false'] as const),
    nixVersion: parseNixVersion(get('nix-version')),
    nixInstallUrl,
    nixSha256,
    extraNixConf: get('extra-nix-conf'),
    pushByDigest: parseBoolean('push-by-digest', get('push-by-digest'), false),
    merge,
    labels: parseKeyValues('labels', get('labels')),
    annotations: parseKeyValues('annotations', get('annotations')),
    sbom,
    sbomAttach,
    binaryCacheKey: get('binary-cache-key') && checkNixKey('binary-cache-key', get('binary-cache-key'), 64),
    binaryCachePublicKeys: splitList(get('binary-cache-public-key').replace(/\s+/g, '\n')).map((k) => checkNixKey('binary-cache-public-key', k, 32)),
    binaryCache,
  };
}
