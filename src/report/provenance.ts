// The image's provenance: an in-toto Statement v1 whose subject is the image (name and sha256 digest), with
// an SLSA v1 provenance predicate: what was built (flake, attr, build-args), from what (the source commit,
// the flake's locked reference and every locked input with its narHash and rev), by what (this action and
// its version, Nix's version, the workflow and run, from the runner's environment). Pure, plus writing the
// statement and the predicate alone (what actions/attest takes as predicate-path).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FlakeMetadata } from '../nix/sbom-data.js';
import { sha256Hex } from '../nix/sbom-data.js';
import { secretSettingOf } from '../nix/secrets.js';
import { TOOL, type SbomSubject } from './sbom.js';

export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const SLSA_PROVENANCE_V1 = 'https://slsa.dev/provenance/v1';
export const PROVENANCE_MEDIA_TYPE = 'application/vnd.in-toto+json';
export const BUILD_TYPE = 'https://github.com/nix-image-action/nix-image-action/buildtypes/nix-flake-image/v1';
export const PROVENANCE_FILE = 'provenance.intoto.json';
export const PREDICATE_FILE = 'provenance.predicate.json';

/** SLSA's ResourceDescriptor (the fields used here). */
export interface ResourceDescriptor {
  name?: string;
  uri?: string;
  digest?: Record<string, string>;
  annotations?: Record<string, unknown>;
}

export interface ProvenanceInput {
  subject: SbomSubject;
  flake: string;
  attr: string;
  buildArgs: string[];
  /** `nix flake metadata --json` of the flake (absent: it could not be read). */
  metadata?: FlakeMetadata;
  /** The image derivation, and the store path it was built to (or only named, for layers made from the store). */
  drvPath?: string;
  outPath?: string;
  nixVersion?: string;
  /** The runner's environment: GITHUB_* variables. */
  env: NodeJS.ProcessEnv;
  startedOn?: Date;
  finishedOn?: Date;
}

export interface Statement {
  _type: typeof STATEMENT_TYPE;
  subject: { name: string; digest: Record<string, string> }[];
  predicateType: typeof SLSA_PROVENANCE_V1;
  predicate: Record<string, unknown>;
}

const time = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

function digestOf(narHash: string | undefined, rev: string | undefined): Record<string, string> | undefined {
  const sha256 = narHash ? sha256Hex(narHash) : undefined;
  const d = { ...(sha256 ? { sha256 } : {}), ...(rev ? { gitCommit: rev } : {}) };
  return Object.keys(d).length ? d : undefined;
}

/** The workflow file and ref of GITHUB_WORKFLOW_REF (`owner/repo/.github/workflows/x.yml@refs/heads/main`). */
function workflowOf(env: NodeJS.ProcessEnv, server: string): Record<string, string> | undefined {
  const ref = env.GITHUB_WORKFLOW_REF;
  const repo = env.GITHUB_REPOSITORY;
  if (!ref || !repo) return undefined;
  const at = ref.lastIndexOf('@');
  const file = at > 0 ? ref.slice(0, at) : ref;
  return {
    ref: at > 0 ? ref.slice(at + 1) : '',
    repository: `${server}/${repo}`,
    path: file.startsWith(`${repo}/`) ? file.slice(repo.length + 1) : file,
  };
}

/** A URL or reference as it may be published: no userinfo, no token-like query value. */
export function publishable(value: string): string {
  return value
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi, '$1')
    .replace(/([?&][^=&\s]*(?:token|password|secret|key)[^=&\s]*=)[^&\s]*/gi, '$1<redacted>');
}

/** build-args as they may be published: URLs without credentials, the value of a secret setting redacted. */
export function publishableArgs(args: string[]): string[] {
  return args.map((arg, i) => (secretSettingOf(args, i) !== undefined ? '<redacted>' : publishable(arg)));
}

/** A locked input's attributes, published: its URL-like values without credentials. */
function publishableLocked(locked: unknown): unknown {
  if (typeof locked === 'string') return publishable(locked);
  if (Array.isArray(locked)) return locked.map(publishableLocked);
  if (locked && typeof locked === 'object') return Object.fromEntries(Object.entries(locked).map(([k, v]) => [k, publishableLocked(v)]));
  return locked;
}

/** What the build read: the source commit, the flake as locked, each locked input. */
function resolvedDependencies(i: ProvenanceInput, server: string): ResourceDescriptor[] {
  const deps: ResourceDescriptor[] = [];
  const { GITHUB_REPOSITORY: repo, GITHUB_SHA: sha, GITHUB_REF: ref } = i.env;
  if (repo && sha) deps.push({ name: 'source', uri: `git+${server}/${repo}${ref ? `@${ref}` : ''}`, digest: { gitCommit: sha } });
  const m = i.metadata;
  if (m) {
    const digest = digestOf(m.narHash, m.revision);
    deps.push({
      name: 'flake',
      uri: publishable(m.url),
      ...(digest ? { digest } : {}),
      annotations: { ...(m.narHash ? { narHash: m.narHash } : {}), ...(m.resolvedUrl ? { resolvedUrl: publishable(m.resolvedUrl) } : {}), ...(m.lastModified !== undefined ? { lastModified: m.lastModified } : {}) },
    });
    for (const input of m.inputs) {
      const d = digestOf(input.narHash, input.rev);
      deps.push({
        name: `flake-input:${input.name}`,
        uri: publishable(input.url),
        ...(d ? { digest: d } : {}),
        annotations: { ...(input.narHash ? { narHash: input.narHash } : {}), ...(input.rev ? { rev: input.rev } : {}), locked: publishableLocked(input.locked) },
      });
    }
  }
  return deps;
}

/** The in-toto statement: subject the image, predicate SLSA provenance v1. */
export function provenanceStatement(i: ProvenanceInput): Statement {
  const server = (i.env.GITHUB_SERVER_URL || 'https://github.com').replace(/\/+$/, '');
  const workflow = workflowOf(i.env, server);
  const { GITHUB_REPOSITORY: repo, GITHUB_RUN_ID: runId, GITHUB_RUN_ATTEMPT: attempt } = i.env;
  const byproducts: ResourceDescriptor[] = [
    ...(i.drvPath ? [{ name: 'derivation', uri: i.drvPath }] : []),
    ...(i.outPath ? [{ name: 'store-path', uri: i.outPath }] : []),
  ];
  const metadata = {
    ...(repo && runId ? { invocationId: `${server}/${repo}/actions/runs/${runId}${attempt ? `/attempts/${attempt}` : ''}` } : {}),
    ...(i.startedOn ? { startedOn: time(i.startedOn) } : {}),
    ...(i.finishedOn ? { finishedOn: time(i.finishedOn) } : {}),
  };
  return {
    _type: STATEMENT_TYPE,
    subject: [{ name: `${i.subject.registry}/${i.subject.repository}`, digest: { sha256: i.subject.digest.replace(/^sha256:/, '') } }],
    predicateType: SLSA_PROVENANCE_V1,
    predicate: {
      buildDefinition: {
        buildType: BUILD_TYPE,
        externalParameters: {
          // Published with the image: whatever credentials a URL or a build-arg carried are left out.
          flake: publishable(i.flake),
          attr: i.attr,
          installable: `${publishable(i.flake)}#${i.attr}`,
          buildArgs: publishableArgs(i.buildArgs),
          ...(workflow ? { workflow } : {}),
        },
        internalParameters: {
          ...(i.nixVersion ? { nixVersion: i.nixVersion } : {}),
          ...(i.env.GITHUB_EVENT_NAME ? { github: { eventName: i.env.GITHUB_EVENT_NAME, ...(i.env.RUNNER_ENVIRONMENT ? { runnerEnvironment: i.env.RUNNER_ENVIRONMENT } : {}) } } : {}),
        },
        resolvedDependencies: resolvedDependencies(i, server),
      },
      runDetails: {
        builder: {
          id: `https://github.com/nix-image-action/nix-image-action@v${TOOL.version}`,
          version: { [TOOL.name]: TOOL.version, ...(i.nixVersion ? { nix: i.nixVersion } : {}) },
        },
        metadata,
        ...(byproducts.length ? { byproducts } : {}),
      },
    },
  };
}

/** Writes the statement (`provenance.intoto.json`) and its predicate alone (`provenance.predicate.json`). */
export async function writeProvenance(dir: string, statement: Statement): Promise<{ statement: string; predicate: string }> {
  const paths = { statement: join(dir, PROVENANCE_FILE), predicate: join(dir, PREDICATE_FILE) };
  await writeFile(paths.statement, `${JSON.stringify(statement, null, 2)}\n`);
  await writeFile(paths.predicate, `${JSON.stringify(statement.predicate, null, 2)}\n`);
  return paths;
}
