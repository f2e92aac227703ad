// One image, several repositories (tags naming other registries or repositories, as docker/metadata-action
// writes them): the image is made once and pushed to each repository in turn, by digest only; a repository
// in a registry that an earlier one is in mounts the blobs from it instead of uploading them. Only when
// every repository holds every blob, and all came out with one digest, is anything tagged, repository by
// repository. With one repository this is exactly pushImage.
import type { ImageInput } from '../image/types.js';
import type { RegistryClient } from './client.js';
import { findExisting, retag, type Existing } from './existing.js';
import type { KnownLayer } from './manifest.js';
import { pushImage, tagAll, type PushOptions, type PushResult } from './push.js';
import { tagsOf, type ReuseRef } from './reference.js';
import type { Logger } from './types.js';

export interface PushTarget {
  client: RegistryClient;
  /** Tags in this repository (none with push-by-digest). */
  tags: string[];
  reuse: ReuseRef[];
  /** This repository's record of layers last pushed (the store cache's). */
  known: KnownLayer[];
}

export type CommonPushOptions = Pick<PushOptions, 'logger' | 'tmpDir' | 'annotations' | 'compressionLevel'> & { byDigest?: boolean };

export async function pushToAll(input: ImageInput, targets: PushTarget[], opts: CommonPushOptions): Promise<PushResult[]> {
  const [first] = targets;
  if (!first) throw new Error('pushToAll needs a target');
  const common = { logger: opts.logger, tmpDir: opts.tmpDir, annotations: opts.annotations, compressionLevel: opts.compressionLevel };
  if (targets.length === 1) {
    return [await pushImage({ ...common, input, client: first.client, tags: first.tags, byDigest: opts.byDigest, reuseTags: first.reuse, known: first.known })];
  }
  const results: PushResult[] = [];
  for (const target of targets) {
    // Blobs already put in an earlier repository of the same registry are mounted from it.
    const mounts = targets
      .slice(0, results.length)
      .map((t, i) => ({ t, digest: results[i]!.digest }))
      .filter(({ t }) => t.client.registry === target.client.registry)
      .map(({ t, digest }) => ({ repository: t.client.repository, tag: digest }));
    opts.logger.info(`pushing to ${target.client.registry}/${target.client.repository} (by digest; tags once every repository has the image)`);
    results.push(
      await pushImage({ ...common, input, client: target.client, tags: [], byDigest: true, reuseTags: [...target.reuse, ...mounts], known: target.known }),
    );
  }
  const digests = [...new Set(results.map((r) => r.digest))];
  if (digests.length > 1) {
    const where = targets.map((t, i) => `${t.client.registry}/${t.client.repository}: ${results[i]!.digest}`).join('; ');
    throw new Error(`the image came out with different digests in different repositories (a layer there was pushed by another tool): ${where}; nothing was tagged`);
  }
  if (!opts.byDigest) await tagEverywhere(targets, results);
  return results;
}

/** Tags each repository in turn; a failure says which repositories were tagged already. */
async function tagEverywhere(targets: PushTarget[], results: { manifest: PushResult['manifest'] }[]): Promise<void> {
  for (const [i, target] of targets.entries()) {
    try {
      await tagAll(target.client, target.tags, results[i]!.manifest);
    } catch (error) {
      if (error instanceof Error && i > 0) {
        error.message += ` (repositories tagged already: ${targets
          .slice(0, i)
          .map((t) => `${t.client.registry}/${t.client.repository}`)
          .join(', ')})`;
      }
      throw error;
    }
  }
}

export interface FoundEverywhere {
  existing?: Existing[];
  reason: string;
}

/** The image in every repository already (made from the same derivation and settings): one digest, every blob there. */
export async function findEverywhere(targets: PushTarget[], wanted: Record<string, string>, logger: Logger): Promise<FoundEverywhere> {
  const found: Existing[] = [];
  for (const target of targets) {
    const r = await findExisting(target.client, [...target.tags, ...tagsOf(target.reuse, target.client.repository)], wanted, logger);
    if (!r.existing) return { reason: targets.length > 1 ? `${target.client.registry}/${target.client.repository}: ${r.reason}` : r.reason };
    if (found[0] && r.existing.manifest.digest !== found[0].manifest.digest) return { reason: `the repositories hold different images made from it` };
    found.push(r.existing);
  }
  const reason = found.length === 1 ? 'the manifest under ' + found[0]!.foundUnder + ' was made from the same derivation with the same settings, and the registry holds its config and every layer' : `every repository holds it (${found.map((f) => f.foundUnder).join(', ')}), made from the same derivation with the same settings`;
  return { existing: found, reason };
}

/** Puts the existing image under each repository's tags. */
export async function retagEverywhere(targets: PushTarget[], existing: Existing[], started: number): Promise<PushResult[]> {
  const results: PushResult[] = [];
  for (const [i, target] of targets.entries()) results.push({ ...(await retag(target.client, target.tags, existing[i]!, started)), retries: target.client.retryStats() });
  return results;
}
