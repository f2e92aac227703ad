// Where the image goes: one client per repository that `tags` names, each reached, its credentials
// checked and its repository asked to open an upload session (then cancelled) before anything is built,
// so a typo, a missing login or a repository the registry does not create on push fails in seconds. Credentials: the
// username/password inputs for the `registry` input's host, github-token for ghcr.io, the Docker config
// (docker/login-action's) for any other. `insecure` relaxes TLS for the `registry` input's host only, and
// `insecure-registries` for the hosts it names: a tag naming ghcr.io or Docker Hub beside a test registry
// keeps full TLS verification there.
import { InputError, type ActionInputs } from '../inputs/index.js';
import { RegistryClient } from './client.js';
import { resolveCredentialSource } from './credentials.js';
import { parseImageName, parseMergeEntry, parseReuseTags, parseTagTargets, sameRegistry, validateRegistry, type ImageName, type ReuseRef, type TagTarget } from './reference.js';
import type { PushTarget } from './targets.js';
import type { Logger } from './types.js';

export type DestinationInputs = Pick<ActionInputs, 'registry' | 'image' | 'tags' | 'reuseTags' | 'username' | 'password' | 'githubToken' | 'push' | 'insecure' | 'insecureRegistries' | 'pushByDigest'> & Partial<Pick<ActionInputs, 'merge'>>;

export interface Destinations {
  /** The repository of the registry and image inputs (bare tags go there). */
  primary: ImageName;
  /** Every repository `tags` names, with its tags, in order of first appearance. */
  groups: TagTarget[];
  /** One per group when pushing; empty with push: false. */
  targets: PushTarget[];
}

export interface ConnectOptions {
  logger: Logger;
  /** Called with every credential and token, to be masked. */
  onSecret: (secret: string) => void;
}

export async function connectRegistries(inputs: DestinationInputs, opts: ConnectOptions): Promise<Destinations> {
  const primary = parseImageName(inputs.registry, inputs.image);
  const groups = parseTagTargets(inputs.tags, () => primary);
  const targets: PushTarget[] = [];
  // Host names compare case-insensitively (reference.ts lower-cases the hosts tags name).
  const names = (h: string, t: ImageName): boolean => sameRegistry(h, t.registry) || sameRegistry(h, t.apiHost);
  for (const host of inputs.insecureRegistries) checkHost(host);
  // An entry no tag names is a host a registry sends the action to (its token server, its blob storage),
  // allowed plain HTTP by name; TLS to it is verified all the same.
  const plainHosts = inputs.insecureRegistries.filter((h) => !groups.some((g) => names(h, g.target)));
  const insecure = (t: ImageName): boolean => (inputs.insecure && t.apiHost === primary.apiHost) || inputs.insecureRegistries.some((h) => names(h, t));
  // reuse-tags read against every repository, and merge entries against the index's home (the first
  // repository), before any request: a typo fails in one line, not after the pings.
  const reuse = groups.map((g) => parseReuseTags(inputs.reuseTags, g.target));
  for (const entry of inputs.merge ?? []) parseMergeEntry(entry, groups[0]!.target);
  if (!inputs.push) return { primary, groups, targets };
  try {
    for (const [i, group] of groups.entries()) await connectGroup(group, reuse[i]!);
  } catch (error) {
    // A later repository that cannot be reached closes the clients already made: no idle connection
    // holds the failed step open.
    for (const t of targets) t.client.close();
    throw error;
  }
  return { primary, groups, targets };

  async function connectGroup(group: TagTarget, reuseRefs: ReuseRef[]): Promise<void> {
    const ours = group.target.apiHost === primary.apiHost;
    const { credentials, reload } = resolveCredentialSource({
      registry: group.target.registry,
      username: ours ? inputs.username : '',
      password: ours ? inputs.password : '',
      githubToken: inputs.githubToken,
    });
    for (const secret of [credentials?.password, credentials?.identityToken]) if (secret) opts.onSecret(secret);
    const client = new RegistryClient({
      registry: group.target.apiHost,
      repository: group.target.repository,
      insecure: insecure(group.target),
      plainHosts,
      credentials,
      ...(reload ? { reloadCredentials: reload } : {}),
      logger: opts.logger,
      onSecret: opts.onSecret,
      ...(ours ? {} : { credentialsHint: `log in to it before this step (docker/login-action with registry: ${group.target.registry}): its Docker config entry is used` }),
    });
    try {
      await client.ping();
      // The repository takes pushes (it exists; its project does): an upload session opened and cancelled.
      await client.checkPush();
      // reuse-tags: tags of this repository, or repository:tag of another in the same registry (mounted).
      targets.push({ client, tags: inputs.pushByDigest ? [] : group.tags, reuse: reuseRefs, known: [] });
    } catch (error) {
      client.close();
      throw error;
    }
  }
}

/** A host of insecure-registries, checked by the registry input's grammar. */
function checkHost(host: string): void {
  try {
    validateRegistry(host);
  } catch (error) {
    if (error instanceof InputError) throw new InputError('insecure-registries', error.message.replace(/^input registry: /, ''));
    throw error;
  }
}

/** The tags each repository is given: none when pushing by digest. */
export function repositoryTags(d: Destinations, i: number, pushByDigest: boolean): string[] {
  return pushByDigest ? [] : (d.targets[i]?.tags ?? d.groups[i]!.tags);
}
