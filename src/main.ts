// The main step: only wiring. inputs → nix (install, cache restore, build) → image → registry → report.
import './threadpool.js'; // first: sizes the thread pool before anything starts it
import * as core from '@actions/core';
import { envInputReader, parseInputs } from './inputs/index.js';
import { maskNixSecrets, setupNix } from './nix/install.js';
import { withoutSecrets } from './image/child-env.js';
import { restoreStoreCache, untrustedCacheWarning } from './nix/cache.js';
import { evaluateDerivation, splitArgs } from './nix/build.js';
import { imageDerivation, resolveImage } from './nix/resolve.js';
import { readLayerRecord, recordLayers } from './nix/layer-record.js';
import { detectSource } from './image/format.js';
import { archiveInput } from './image/input.js';
import { planInput, planKeys, UnsupportedImageError, type StorePlan } from './image/plan.js';
import { manifestAnnotations, producerAnnotations } from './image/settings.js';
import { labelled } from './image/labels.js';
import type { ImageInput } from './image/types.js';
import { MediaTypes } from './registry/types.js';
import { resolveCredentials } from './registry/credentials.js';
import { RegistryClient } from './registry/client.js';
import { parseImageName, parseReuseTags, parseTagTargets, type TagTarget } from './registry/reference.js';
import { mergeImages } from './registry/merge.js';
import { pushImage, type PushResult } from './registry/push.js';
import { findEverywhere, pushToAll, retagEverywhere, type PushTarget } from './registry/targets.js';
import type { KnownLayer } from './registry/manifest.js';
import { report, reportMerge } from './report/index.js';
import { savePostState, type PostState } from './state.js';
import { actionLogger, errorLine } from './log.js';

/** Why image/ cannot make a plan's layers exactly, or undefined when it can. */
function refusal(make: () => unknown): string | undefined {
  try {
    make();
    return undefined;
  } catch (error) {
    if (error instanceof UnsupportedImageError) return error.message;
    throw error;
  }
}

/** The layer keys of a recognised image read through its archive anyway: its manifest is the plan's own. */
function archiveKeys(plan: StorePlan | undefined): string[] | undefined {
  if (!plan || refusal(() => planKeys(plan))) return undefined;
  return planKeys(plan);
}

/** The store cache's record of the layers last pushed to a repository, as the push's known layers. */
async function recordedLayers(dir: string | undefined, target: string): Promise<KnownLayer[]> {
  if (!dir) return [];
  return (await readLayerRecord(dir, target)).map((l) => ({
    diffID: l.diffID,
    desc: { mediaType: MediaTypes.ociLayerGzip, digest: l.digest, size: l.size },
    ...(l.key ? { key: l.key } : {}),
  }));
}

async function run(): Promise<void> {
  const started = Date.now();
  const inputs = parseInputs(envInputReader());
  if (inputs.password) core.setSecret(inputs.password);
  if (inputs.githubToken) core.setSecret(inputs.githubToken);
  maskNixSecrets(inputs);
  // tags: bare tags of registry/image, or full references to any registry and repository (metadata-action).
  const groups = parseTagTargets(inputs.tags, () => parseImageName(inputs.registry, inputs.image));
  const defaultTarget = parseImageName(inputs.registry, inputs.image);
  const target = groups[0]!.target;
  const buildArgs = splitArgs(inputs.buildArgs);
  const logger = actionLogger();

  // Reach every registry and check its credentials before a long build, so a typo fails in seconds: the
  // inputs for the registry input's host, github-token for ghcr.io, the Docker config for the others.
  const targets: PushTarget[] = [];
  if (inputs.push) {
    for (const group of groups) {
      const ours = group.target.apiHost === defaultTarget.apiHost;
      const credentials = resolveCredentials({
        registry: group.target.registry,
        username: ours ? inputs.username : '',
        password: ours ? inputs.password : '',
        githubToken: inputs.githubToken,
      });
      if (credentials) core.setSecret(credentials.password);
      const client = new RegistryClient({
        registry: group.target.apiHost,
        repository: group.target.repository,
        insecure: inputs.insecure,
        credentials,
        logger,
        onSecret: (token) => core.setSecret(token),
        ...(ours ? {} : { credentialsHint: `log in to it before this step (docker/login-action with registry: ${group.target.registry}): its Docker config entry is used` }),
      });
      await client.ping();
      // reuse-tags: tags of this repository, or repository:tag of another in the same registry (mounted).
      targets.push({ client, tags: inputs.pushByDigest ? [] : group.tags, reuse: parseReuseTags(inputs.reuseTags, group.target), known: [] });
    }
  } else {
    parseReuseTags(inputs.reuseTags, target);
  }
  const client = targets[0]?.client;
  const fullTags = (t: PushTarget | undefined, g: TagTarget) => (inputs.pushByDigest ? [] : (t?.tags ?? g.tags));

  // A merge job builds nothing: the images are in the registry already, pushed by digest by the matrix.
  if (inputs.merge.length > 0 && client) {
    const merged = await mergeImages(client, inputs.merge, groups[0]!.tags, target.repository, Object.fromEntries(manifestAnnotations(inputs.annotations)));
    await reportMerge({
      registry: target.registry,
      repository: target.repository,
      tags: groups[0]!.tags,
      index: { digest: merged.index.digest, size: merged.index.bytes.length },
      images: merged.images.map((i) => ({ ref: i.ref, digest: i.descriptor.digest, platform: i.descriptor.platform })),
      seconds: (Date.now() - started) / 1000,
    });
    core.info(`merged ${merged.images.length} image(s) into ${target.registry}/${target.repository}@${merged.index.digest}`);
    return;
  }

  let mark = Date.now();
  const lap = (): number => {
    const now = Date.now();
    const seconds = (now - mark) / 1000;
    mark = now;
    return seconds;
  };
  const phases: { install?: number; evaluate?: number; restore?: number } = {};
  const nix = await setupNix({
    installNix: inputs.installNix,
    nixVersion: inputs.nixVersion,
    installUrl: inputs.nixInstallUrl || undefined,
    sha256: inputs.nixSha256 || undefined,
    githubToken: inputs.githubToken || undefined,
    extraNixConf: inputs.extraNixConf || undefined,
  });
  phases.install = lap();

  // The registry is the image's binary cache: evaluate the image's derivation (nothing built, no cache
  // restored yet); a manifest under the tags that records the same derivation and settings is the image.
  // Nix runs flake code (an --impure evaluation can read the environment): it gets none of the action's
  // inputs or runner tokens, only its own settings through NIX_CONFIG.
  const installable = `${inputs.flake}#${inputs.attr}`;
  const nixEnv = { ...withoutSecrets(process.env), ...nix.env };
  const evaluation = await evaluateDerivation({ nix: nix.nix, installable, buildArgs, env: nixEnv });
  const annotations = manifestAnnotations(inputs.annotations);
  const producer = 'drvPath' in evaluation ? producerAnnotations(await imageDerivation(evaluation.drvPath), { labels: inputs.labels, annotations }) : undefined;
  phases.evaluate = lap();
  const others = (results: PushResult[]) =>
    targets.slice(1).map((t, i) => ({ registry: groups[i + 1]!.target.registry, repository: t.client.repository, tags: fullTags(t, groups[i + 1]!), push: results[i + 1]! }));
  if (targets.length > 0 && producer && 'drvPath' in evaluation) {
    const found = await findEverywhere(targets, producer, logger);
    if (found.existing) {
      core.info(`image: already in the registry, nothing to build: ${found.reason}`);
      const pushed = await retagEverywhere(targets, found.existing, started);
      const metadata = await report({
        registry: target.registry,
        repository: target.repository,
        tags: fullTags(targets[0], groups[0]!),
        storePath: evaluation.outPath,
        format: 'already in the registry',
        nixVersion: nix.version,
        cacheHit: 'false',
        cache: { note: 'not restored: nothing to build' },
        buildSeconds: 0,
        push: pushed[0]!,
        others: others(pushed),
        phases,
      });
      core.info(`tagged ${metadata.image} (${found.existing[0]!.foundUnder}): nothing built, no layer sent`);
      return; // no post state: the post step restores and saves nothing
    }
    core.info(`image: building, ${found.reason}`);
  } else if ('reason' in evaluation) {
    core.info(`image: building, the registry cannot stand in for the build: ${evaluation.reason}`);
  }

  lap(); // the registry lookup is not the restore's time
  const state: PostState = { started: true };
  const cache = await restoreStoreCache({
    enabled: inputs.cache,
    keyPrefix: inputs.cacheKey || undefined,
    attr: inputs.attr,
    flake: inputs.flake,
    maxSize: inputs.cacheMaxSize,
    nix: nix.nix,
    env: nix.env,
  });
  state.cache = cache.state;
  savePostState(state);
  if (inputs.cache) phases.restore = lap();

  // Evaluate first: a recognised dockerTools image is pushed from a plan, its archive never built.
  const resolved = await resolveImage({
    nix: nix.nix,
    installable,
    buildArgs,
    env: { ...nixEnv, ...cache.env },
    layersFrom: inputs.layersFrom,
    ...('drvPath' in evaluation ? { drvPath: evaluation.drvPath } : {}),
    checkPlan: (plan) => refusal(() => planInput(plan)),
    onDerivation: (drvPath) => {
      // What a failed build did build is kept for the next attempt: the post step saves it from here.
      state.drvPath = drvPath;
      savePostState(state);
    },
  });
  if (resolved.built) {
    state.storePath = resolved.built.storePath;
    state.drvPath = resolved.built.drvPath;
    core.info(`built ${resolved.built.storePath} in ${resolved.built.seconds.toFixed(1)} s`);
  } else if (resolved.plan) {
    // The image's content is the conf's closure (it names every layer's paths): the post step saves that,
    // and the archive, never built, stays out of the store cache.
    state.storePath = resolved.plan.image.confPath;
    core.info(`built the conf ${resolved.plan.image.confPath} and what it names in ${resolved.seconds.toFixed(1)} s`);
  }
  savePostState(state);
  const untrusted = untrustedCacheWarning(resolved.ignoredSubstituters);
  if (untrusted) core.warning(untrusted);

  let input: ImageInput;
  let format: string;
  if (resolved.plan) {
    input = planInput(resolved.plan);
    format = 'layers from the store';
  } else {
    const source = await detectSource(resolved.outPath);
    core.info(`image format: ${source.format} (${source.path})`);
    input = archiveInput(source, { keys: archiveKeys(resolved.archivePlan) });
    format = source.format;
  }
  input = labelled(input, inputs.labels);

  const recordKey = (t: PushTarget) => `${t.client.registry}/${t.client.repository}`;
  for (const t of targets) t.known = await recordedLayers(cache.state?.dir, recordKey(t));
  const common = { logger, tmpDir: process.env.RUNNER_TEMP || undefined, annotations: { ...Object.fromEntries(annotations), ...producer } };
  const pushed =
    targets.length > 0
      ? await pushToAll(input, targets, { ...common, byDigest: inputs.pushByDigest })
      : [await pushImage({ ...common, input, tags: groups[0]!.tags })];
  if (cache.state) {
    for (const [i, t] of targets.entries()) {
      await recordLayers(cache.state.dir, recordKey(t), pushed[i]!.layers.map((l) => ({ diffID: l.diffID, digest: l.digest, size: l.size, ...(l.key ? { key: l.key } : {}) })));
    }
  }

  const metadata = await report({
    registry: target.registry,
    repository: target.repository,
    tags: fullTags(targets[0], groups[0]!),
    storePath: resolved.outPath,
    format,
    nixVersion: nix.version,
    cacheHit: cache.hit,
    cache: { restored: cache.hit === 'false' ? undefined : cache.restored, note: cache.note },
    buildSeconds: resolved.seconds,
    push: pushed[0]!,
    others: others(pushed),
    phases,
  });
  core.info(
    `${pushed[0]!.pushed ? 'pushed' : 'computed (push: false)'} ${metadata.image}: ` +
      `${metadata.layers.uploaded} layer(s) uploaded, ${metadata.layers.skipped} already there` +
      (targets.length > 1 ? `; the same digest in ${targets.length} repositories` : ''),
  );
}

run().catch((error: unknown) => {
  core.setFailed(errorLine(error));
});
