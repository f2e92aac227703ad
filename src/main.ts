// The main step: the job as named phases, each in the folder of its concern, wired here and nowhere else.
// inputs → registries reached → (merge) → nix set up → evaluated → (already in the registry) → store cache
// restored → built → image read → pushed → layers recorded → reported.
import './threadpool.js'; // first: sizes the thread pool before anything starts it
import * as core from '@actions/core';
import { envInputReader, parseInputs, type ActionInputs } from './inputs/index.js';
import { maskNixSecrets, setupNix, type NixSetup } from './nix/install.js';
import { withoutSecrets } from './image/child-env.js';
import { restoreStoreCache, untrustedCacheWarning, type RestoreResult } from './nix/cache.js';
import { evaluateDerivation, splitArgs, type Evaluation } from './nix/build.js';
import { resolveImage, type ResolvedImage } from './nix/resolve.js';
import { producerDerivation } from './nix/dockertools.js';
import { readLayerRecord, recordLayers } from './nix/layer-record.js';
import { imageToPush, planRefusal } from './image/from-build.js';
import { manifestAnnotations, producerAnnotations, type ImageSettings } from './image/settings.js';
import { MediaTypes } from './registry/types.js';
import { connectRegistries, repositoryTags, type Destinations } from './registry/connect.js';
import { mergeImages } from './registry/merge.js';
import { pushImage, type PushResult } from './registry/push.js';
import { pushToAll, type PushTarget } from './registry/targets.js';
import { retagIfPushed } from './registry/shortcut.js';
import type { KnownLayer } from './registry/manifest.js';
import { report, reportMerge, type RunReport } from './report/index.js';
import { PhaseClock } from './report/phases.js';
import { savePostState, stepTempDir, type PostState } from './state.js';
import { stopOnCancel } from './cancel.js';
import { actionLogger, errorLine } from './log.js';

const logger = actionLogger();

/** Inputs parsed once; every secret masked before anything can print it. */
function readInputs(): ActionInputs {
  const inputs = parseInputs(envInputReader());
  if (inputs.password) core.setSecret(inputs.password);
  if (inputs.githubToken) core.setSecret(inputs.githubToken);
  maskNixSecrets(inputs);
  return inputs;
}

/** A merge job builds nothing: the images are in the registry already, pushed by digest by the matrix. */
async function merge(inputs: ActionInputs, to: Destinations, started: number): Promise<void> {
  const { target, tags } = to.groups[0]!;
  const merged = await mergeImages(to.targets[0]!.client, inputs.merge, tags, target.repository, Object.fromEntries(manifestAnnotations(inputs.annotations)));
  await reportMerge({
    registry: target.registry,
    repository: target.repository,
    tags,
    index: { digest: merged.index.digest, size: merged.index.bytes.length },
    images: merged.images.map((i) => ({ ref: i.ref, digest: i.descriptor.digest, platform: i.descriptor.platform })),
    seconds: (Date.now() - started) / 1000,
  });
  core.info(`merged ${merged.images.length} image(s) into ${target.registry}/${target.repository}@${merged.index.digest}`);
}

/** The store cache's record of the layers last pushed to a repository, as the push's known layers. */
async function recordedLayers(dir: string | undefined, target: PushTarget): Promise<KnownLayer[]> {
  if (!dir) return [];
  return (await readLayerRecord(dir, recordKey(target))).map((l) => ({
    diffID: l.diffID,
    desc: { mediaType: MediaTypes.ociLayerGzip, digest: l.digest, size: l.size },
    ...(l.key ? { key: l.key } : {}),
  }));
}

const recordKey = (t: PushTarget): string => `${t.client.registry}/${t.client.repository}`;

/** The outputs and summary of a push (or of a re-tag), for every repository the image went to. */
function reporter(inputs: ActionInputs, to: Destinations, clock: PhaseClock) {
  return (pushed: PushResult[], r: Omit<RunReport, 'registry' | 'repository' | 'tags' | 'push' | 'others' | 'phases'>) =>
    report({
      registry: to.groups[0]!.target.registry,
      repository: to.groups[0]!.target.repository,
      tags: repositoryTags(to, 0, inputs.pushByDigest),
      push: pushed[0]!,
      others: to.groups.slice(1).map((g, i) => ({ registry: g.target.registry, repository: g.target.repository, tags: repositoryTags(to, i + 1, inputs.pushByDigest), push: pushed[i + 1]! })),
      phases: clock.phases,
      ...r,
    });
}

interface Job {
  installable: string;
  buildArgs: string[];
  /** The environment Nix runs in: no action input or runner token, its own settings only. */
  env: NodeJS.ProcessEnv;
  evaluation: Evaluation;
  settings: ImageSettings;
  /** The producer annotations an image made from this evaluation carries (absent: it cannot be known). */
  wanted?: Record<string, string>;
}

/** Evaluates the image's derivation without building anything. */
async function evaluate(inputs: ActionInputs, nix: NixSetup): Promise<Job> {
  const installable = `${inputs.flake}#${inputs.attr}`;
  const buildArgs = splitArgs(inputs.buildArgs);
  const env = { ...withoutSecrets(process.env), ...nix.env };
  const evaluation = await evaluateDerivation({ nix: nix.nix, installable, buildArgs, env });
  const settings = { labels: inputs.labels, annotations: manifestAnnotations(inputs.annotations), layersFrom: inputs.layersFrom };
  const wanted = 'drvPath' in evaluation ? producerAnnotations(await producerDerivation(evaluation.drvPath, inputs.layersFrom), settings) : undefined;
  return { installable, buildArgs, env, evaluation, settings, ...(wanted ? { wanted } : {}) };
}

/** The registry as the image's binary cache: the same derivation and settings pushed before is the image. */
async function pushedBefore(job: Job, to: Destinations, reportPush: ReturnType<typeof reporter>, nix: NixSetup, started: number): Promise<boolean> {
  if (!('drvPath' in job.evaluation)) {
    core.info(`image: building, the registry cannot stand in for the build: ${job.evaluation.reason}`);
    return false;
  }
  if (!job.wanted) return false;
  const shortcut = await retagIfPushed(to.targets, job.wanted, logger, started);
  if (!shortcut.results) {
    if (to.targets.length > 0) core.info(`image: building, ${shortcut.reason}`);
    return false;
  }
  core.info(`image: already in the registry, nothing to build: ${shortcut.reason}`);
  const metadata = await reportPush(shortcut.results, {
    storePath: job.evaluation.outPath,
    format: 'already in the registry',
    nixVersion: nix.version,
    cacheHit: 'false',
    cache: { note: 'not restored: nothing to build' },
    buildSeconds: 0,
  });
  core.info(`tagged ${metadata.image} (${shortcut.foundUnder}): nothing built, no layer sent`);
  return true; // no post state: the post step restores and saves nothing
}

/** Restores the store cache and builds what the image needs; the post step learns what to save. */
async function build(inputs: ActionInputs, nix: NixSetup, job: Job, clock: PhaseClock): Promise<{ cache: RestoreResult; resolved: ResolvedImage }> {
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
  if (inputs.cache) clock.lap('restore');

  // A recognised dockerTools image is pushed from a plan, its archive never built.
  const resolved = await resolveImage({
    nix: nix.nix,
    installable: job.installable,
    buildArgs: job.buildArgs,
    env: { ...job.env, ...cache.env },
    layersFrom: inputs.layersFrom,
    ...('drvPath' in job.evaluation ? { drvPath: job.evaluation.drvPath } : {}),
    checkPlan: planRefusal,
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
    // The image's content is the conf's closure: the post step saves that; the archive, never built, not.
    state.storePath = resolved.plan.image.confPath;
    core.info(`built the conf ${resolved.plan.image.confPath} and what it names in ${resolved.seconds.toFixed(1)} s`);
  }
  savePostState(state);
  const untrusted = untrustedCacheWarning(resolved.ignoredSubstituters);
  if (untrusted) core.warning(untrusted);
  return { cache, resolved };
}

/** Pushes the image to every repository (or computes its digest), and records the layers pushed. */
async function push(inputs: ActionInputs, job: Job, to: Destinations, resolved: ResolvedImage, cache: RestoreResult): Promise<{ pushed: PushResult[]; format: string }> {
  const image = await imageToPush(resolved, inputs.labels);
  if (!resolved.plan) core.info(`image format: ${image.format} (${resolved.outPath})`);
  // The manifest records what fixed its bytes: the conf when the layers were made from the store, the
  // image derivation itself when its archive was read.
  const producer = resolved.drvPath && 'drvPath' in job.evaluation ? producerAnnotations(resolved.plan ? resolved.plan.image.confDrv : resolved.drvPath, job.settings) : {};
  for (const t of to.targets) t.known = await recordedLayers(cache.state?.dir, t);
  const spool = stepTempDir('nix-image-push-');
  stopOnCancel(() => [spool]);
  const common = { logger, tmpDir: spool, annotations: { ...Object.fromEntries(job.settings.annotations ?? []), ...producer } };
  const pushed =
    to.targets.length > 0
      ? await pushToAll(image.input, to.targets, { ...common, byDigest: inputs.pushByDigest })
      : [await pushImage({ ...common, input: image.input, tags: to.groups[0]!.tags })];
  if (cache.state) {
    for (const [i, t] of to.targets.entries()) {
      await recordLayers(cache.state.dir, recordKey(t), pushed[i]!.layers.map((l) => ({ diffID: l.diffID, digest: l.digest, size: l.size, ...(l.key ? { key: l.key } : {}) })));
    }
  }
  return { pushed, format: image.format };
}

async function run(): Promise<void> {
  const started = Date.now();
  const inputs = readInputs();
  const to = await connectRegistries(inputs, { logger, onSecret: (s) => core.setSecret(s) });
  if (inputs.merge.length > 0 && to.targets.length > 0) return merge(inputs, to, started);

  const clock = new PhaseClock();
  const nix = await setupNix({
    installNix: inputs.installNix,
    nixVersion: inputs.nixVersion,
    installUrl: inputs.nixInstallUrl || undefined,
    sha256: inputs.nixSha256 || undefined,
    githubToken: inputs.githubToken || undefined,
    extraNixConf: inputs.extraNixConf || undefined,
  });
  clock.lap('install');
  const job = await evaluate(inputs, nix);
  clock.lap('evaluate');
  const reportPush = reporter(inputs, to, clock);
  if (await pushedBefore(job, to, reportPush, nix, started)) return;
  clock.lap(); // the registry lookup is not the restore's time

  const { cache, resolved } = await build(inputs, nix, job, clock);
  const { pushed, format } = await push(inputs, job, to, resolved, cache);
  const metadata = await reportPush(pushed, {
    storePath: resolved.outPath,
    format,
    nixVersion: nix.version,
    cacheHit: cache.hit,
    cache: { restored: cache.hit === 'false' ? undefined : cache.restored, note: cache.note },
    buildSeconds: resolved.seconds,
  });
  core.info(
    `${pushed[0]!.pushed ? 'pushed' : 'computed (push: false)'} ${metadata.image}: ` +
      `${metadata.layers.uploaded} layer(s) uploaded, ${metadata.layers.skipped} already there` +
      (to.targets.length > 1 ? `; the same digest in ${to.targets.length} repositories` : ''),
  );
}

run().catch((error: unknown) => {
  core.setFailed(errorLine(error));
});
