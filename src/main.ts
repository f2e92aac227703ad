// The main step: the job as named phases, each in the folder of its concern, wired here and nowhere else.
// inputs → registries reached → (merge) → nix set up → evaluated → (already in the registry) → store cache
// restored → built → image read → pushed → layers recorded → reported.
import './threadpool.js'; // first: sizes the thread pool before anything starts it
import './heap.js'; // and counts buffers in V8's heap budget (fewer full collections)
import * as core from '@actions/core';
import { envInputReader, parseInputs, splitArgs, type ActionInputs } from './inputs/index.js';
import { maskNixSecrets, setupNix, type NixSetup } from './nix/install.js';
import { forgetSecretSettings } from './nix/secret-settings.js';
import { evaluatesImpurely } from './nix/secrets.js';
import { publicKeyOf } from './nix/signing.js';
import { withoutSecrets } from './image/child-env.js';
import { restoreStoreCache, untrustedCacheWarning, type RestoreResult } from './nix/cache.js';
import { openBinaryCache, substitutedFrom } from './nix/remote-cache.js';
import { evaluateDerivation, type Evaluation } from './nix/build.js';
import { resolveImage, type ResolvedImage } from './nix/resolve.js';
import { producerDerivation } from './nix/dockertools.js';
import { imageToPush, planRefusal, type ImageToPush } from './image/from-build.js';
import { imageStorePaths } from './image/store-paths.js';
import { manifestAnnotations, producerAnnotations, type ImageSettings } from './image/settings.js';
import { connectRegistries, repositoryTags, type Destinations } from './registry/connect.js';
import { mergeToAll } from './registry/merge.js';
import { pushImage, type PushResult } from './registry/push.js';
import { knownFromRecord, pushToAll, recordPushed } from './registry/targets.js';
import { retagIfPushed } from './registry/shortcut.js';
import { report, reportMerge, type RunDocuments as Documents, type RunReport } from './report/index.js';
import { attachImageDocuments, fetchAttachedDocuments, writeImageDocuments } from './report/documents.js';
import { PhaseClock } from './report/phases.js';
import { proxyProblem, proxySecrets, proxyWarning } from './proxy.js';
import { savePostState, stepTempDir, type PostState } from './state.js';
import { stopOnCancel } from './cancel.js';
import { actionLogger, errorLine } from './log.js';

const logger = actionLogger();

/** Inputs parsed once; every secret masked before anything can print it. */
function readInputs(): ActionInputs {
  const inputs = parseInputs(envInputReader());
  if (inputs.password) core.setSecret(inputs.password);
  if (inputs.githubToken) core.setSecret(inputs.githubToken);
  maskNixSecrets({ ...inputs, args: splitArgs(inputs.buildArgs) });
  if (inputs.binaryCacheKey) {
    core.setSecret(inputs.binaryCacheKey);
    core.setSecret(inputs.binaryCacheKey.slice(inputs.binaryCacheKey.indexOf(':') + 1));
  }
  return inputs;
}

/** A merge job builds nothing: the images are in the registry already, pushed by digest by the matrix.
 *  Every repository `tags` names gets the index (and the images it lists), or none is tagged. */
async function merge(inputs: ActionInputs, to: Destinations, started: number): Promise<void> {
  // A workflow may hand every job the same labels (docker/metadata-action's): said, not refused.
  if (inputs.labels.length > 0) core.warning('labels: a merge puts them nowhere (an index has no image config); they belong to the jobs that build the images, and annotations go on the index');
  const merged = await mergeToAll(to.targets, inputs.merge, Object.fromEntries(manifestAnnotations(inputs.annotations)), logger);
  // The registries as written (docker.io, not its API host), with each repository's tags and what it got.
  const [home, ...others] = to.groups.map((g, i) => ({ registry: g.target.registry, repository: g.target.repository, tags: g.tags, placed: merged.repositories[i]!.images }));
  await reportMerge({
    ...home!,
    others,
    index: { digest: merged.index.digest, size: merged.index.bytes.length },
    images: merged.images.map((i) => ({ ref: i.ref, digest: i.descriptor.digest, platform: i.descriptor.platform })),
    seconds: (Date.now() - started) / 1000,
  });
  core.info(`merged ${merged.images.length} image(s) into ${to.groups.map((g) => `${g.target.registry}/${g.target.repository}`).join(', ')} as ${merged.index.digest}`);
}

const withStats = (p: PushResult, stats: PushResult['retries']): PushResult => (stats ? { ...p, retries: stats } : p);

/** The outputs and summary of a push (or of a re-tag), for every repository the image went to. */
function reporter(inputs: ActionInputs, to: Destinations, clock: PhaseClock) {
  return (pushed: PushResult[], r: Omit<RunReport, 'registry' | 'repository' | 'tags' | 'push' | 'others' | 'phases'>) =>
    report({
      registry: to.groups[0]!.target.registry,
      repository: to.groups[0]!.target.repository,
      tags: repositoryTags(to, 0, inputs.pushByDigest),
      // Each repository's requests sent again as its client counts them now, its tags included.
      push: withStats(pushed[0]!, to.targets[0]?.client.stats),
      others: to.groups.slice(1).map((g, i) => ({ registry: g.target.registry, repository: g.target.repository, tags: repositoryTags(to, i + 1, inputs.pushByDigest), push: withStats(pushed[i + 1]!, to.targets[i + 1]?.client.stats) })),
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
  wanted?: Record<string, string>[];
}

/** Evaluates the image's derivation without building anything. */
async function evaluate(inputs: ActionInputs, nix: NixSetup): Promise<Job> {
  const installable = `${inputs.flake}#${inputs.attr}`;
  const buildArgs = splitArgs(inputs.buildArgs);
  const env = { ...withoutSecrets(process.env), ...nix.env };
  const evaluation = await evaluateDerivation({ nix: nix.nix, installable, buildArgs, env });
  const settings = { labels: inputs.labels, annotations: manifestAnnotations(inputs.annotations), layersFrom: inputs.layersFrom, compression: inputs.compression };
  // An image recognised as dockerTools' is recorded under its conf's derivation when its layers are made from
  // the store; under its own when its plan was refused after the build (a fromImage base, a conf of an
  // unknown shape) and its archive read: either is this image.
  const producer = 'drvPath' in evaluation ? await producerDerivation(evaluation.drvPath, inputs.layersFrom) : undefined;
  const wanted = producer && 'drvPath' in evaluation ? [producer, ...(producer !== evaluation.drvPath ? [evaluation.drvPath] : [])].map((d) => producerAnnotations(d, settings)) : undefined;
  return { installable, buildArgs, env, evaluation, settings, ...(wanted ? { wanted } : {}) };
}

/** The registry as the image's binary cache: the same derivation and settings pushed before is the image. */
async function pushedBefore(inputs: ActionInputs, job: Job, to: Destinations, reportPush: ReturnType<typeof reporter>, nix: NixSetup, clock: PhaseClock): Promise<boolean> {
  if (!('drvPath' in job.evaluation)) {
    core.info(`image: building, the registry cannot stand in for the build: ${job.evaluation.reason}`);
    return false;
  }
  if (!job.wanted) return false;
  const shortcut = await retagIfPushed(to.targets, job.wanted, logger, Date.now());
  if (shortcut.results) clock.lap('push'); // the lookup and the re-tag, in every repository
  if (!shortcut.results) {
    if (to.targets.length > 0) core.info(`image: building, ${shortcut.reason}`);
    return false;
  }
  // Nothing is built just to write an SBOM: an image with none attached leaves the outputs empty.
  const documents = await attachedDocuments(inputs, to, shortcut.results);
  if (inputs.sbomAttach && !documents.docs.sbom && !documents.docs.provenance) {
    core.warning(
      `sbom-attach: the image is unchanged and already in the registry, with no SBOM or provenance attached (a job without sbom-attach pushed it, or its attach failed); nothing is built just to write them, so the sbom and provenance outputs are empty`,
    );
  }
  core.info(`image: already in the registry, nothing to build: ${shortcut.reason}`);
  const metadata = await reportPush(shortcut.results, {
    documents,
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

/** What the binary-cache input gave the build: the paths Nix copied from it. */
interface BinaryCacheUse {
  url: string;
  note: string;
  substituted: string[];
}

/** Restores the store cache, opens the binary cache, and builds what the image needs; the post step
 *  learns what to save and upload. */
async function build(inputs: ActionInputs, nix: NixSetup, job: Job, clock: PhaseClock): Promise<{ cache: RestoreResult; resolved: ResolvedImage; state: PostState; binaryCache?: BinaryCacheUse }> {
  const state: PostState = { started: true };
  // A path from either cache is used only with a signature by one of these (none given: the store cache is trusted).
  const trustedKeys = [...inputs.binaryCachePublicKeys, ...(inputs.binaryCacheKey ? [publicKeyOf(inputs.binaryCacheKey)] : [])];
  const cache = await restoreStoreCache({
    enabled: inputs.cache,
    keyPrefix: inputs.cacheKey || undefined,
    attr: inputs.attr,
    flake: inputs.flake,
    maxSize: inputs.cacheMaxSize,
    purge: inputs.cachePurge,
    nix: nix.nix,
    nixVersion: nix.version,
    trustedKeys,
    env: nix.env,
    buildArgs: job.buildArgs,
  });
  state.cache = cache.state;
  // The binary cache: a substituter after the upstream caches and the store cache; a failure mid-build
  // is recorded for the post step, which then does not try it again.
  const binary = inputs.binaryCache ? await openBinaryCache({ url: inputs.binaryCache, trustedKeys, nix: nix.nix, nixVersion: nix.version, onFailure: () => savePostState(state) }) : undefined;
  if (binary) state.binaryCache = binary.state;
  savePostState(state);
  if (inputs.cache || binary) clock.lap('restore');
  const substituted = new Set<string>();
  const nixConfig = [cache.env.NIX_CONFIG ?? job.env.NIX_CONFIG, binary?.nixConf].filter(Boolean).join('\n');

  // A recognised dockerTools image is pushed from a plan, its archive never built.
  const resolved = await resolveImage({
    nix: nix.nix,
    installable: job.installable,
    buildArgs: job.buildArgs,
    env: { ...job.env, ...cache.env, ...binary?.nixEnv, ...(nixConfig ? { NIX_CONFIG: nixConfig } : {}) },
    onLine: (line) => {
      const path = binary?.nixName ? substitutedFrom(line, binary.nixName) : undefined;
      if (path) substituted.add(path);
    },
    layersFrom: inputs.layersFrom,
    ...('drvPath' in job.evaluation ? { drvPath: job.evaluation.drvPath } : {}),
    checkPlan: planRefusal,
    onDerivation: (drvPath, evaluated) => {
      // What a failed build did build is kept for the next attempt: the post step saves it from here,
      // with what import from derivation realised while evaluating.
      state.drvPath = drvPath;
      state.evaluated = evaluated;
      savePostState(state);
    },
  }).finally(() => binary?.close());
  if (resolved.built) {
    state.storePath = resolved.built.storePath;
    state.drvPath = resolved.built.drvPath;
    core.info(`built ${resolved.built.storePath} in ${resolved.built.seconds.toFixed(1)} s`);
  } else if (resolved.plan) {
    // The image's content is the conf's closure: the post step saves that; the archive, never built, not.
    state.storePath = resolved.plan.image.confPath;
    core.info(`built the conf ${resolved.plan.image.confPath} and what it names in ${resolved.seconds.toFixed(1)} s`);
  }
  state.evaluated = resolved.evaluated;
  savePostState(state);
  const untrusted = untrustedCacheWarning(resolved.ignoredSubstituters);
  if (untrusted) core.warning(untrusted);
  if (binary?.nixName && resolved.ignoredSubstituters.some((u) => u.split('?')[0] === binary.nixName)) {
    core.warning(`binary cache ${inputs.binaryCache}: Nix ignored it because this user is not a trusted user, so the build could not use it; add the user to trusted-users in nix.conf, or let this action install Nix`);
  }
  if (binary?.nixName) core.info(`binary cache ${inputs.binaryCache}: ${substituted.size} path(s) copied from it`);
  // A cache that failed mid-build was a substituter until then: "stopped", not "not used".
  const note = binary?.nixName && binary.state.failed ? `stopped: ${binary.state.failed}` : binary?.note;
  const binaryCache = binary ? { url: inputs.binaryCache, note: note!, substituted: [...substituted] } : undefined;
  return { cache, resolved, state, ...(binaryCache ? { binaryCache } : {}) };
}

/** Pushes the image to every repository (or computes its digest), and records the layers pushed. */
async function push(inputs: ActionInputs, job: Job, to: Destinations, built: { resolved: ResolvedImage; cache: RestoreResult; state: PostState }): Promise<{ pushed: PushResult[]; image: ImageToPush }> {
  const { resolved, cache, state: postState } = built;
  const image = await imageToPush(resolved, inputs.labels, inputs.compression, { scanStorePaths: inputs.sbom !== false });
  if (!resolved.plan) core.info(`image format: ${image.format} (${resolved.outPath})`);
  // The manifest records what fixed its bytes: the conf when the layers were made from the store, the
  // image derivation itself when its archive was read.
  const producer = resolved.drvPath && 'drvPath' in job.evaluation ? producerAnnotations(resolved.plan ? resolved.plan.image.confDrv : resolved.drvPath, job.settings) : {};
  // With trusted keys, only the record this job verified (or wrote) is read: its digest is pinned.
  for (const t of to.targets) t.known = await knownFromRecord(cache.state?.dir, t, cache.state?.layerRecord);
  const spool = stepTempDir('nix-image-push-');
  stopOnCancel(() => [spool]);
  const common = { logger, tmpDir: spool, compression: inputs.compression, annotations: { ...Object.fromEntries(job.settings.annotations ?? []), ...producer } };
  const pushed = to.targets.length > 0 ? await pushToAll(image.input, to.targets, { ...common, byDigest: inputs.pushByDigest }) : computedFor(to, await pushImage({ ...common, input: image.input, tags: to.groups[0]!.tags }));
  if (cache.state) {
    for (const [i, t] of to.targets.entries()) {
      // Pinned (trusted keys): entries written into the file since this job verified it are not kept.
      const written = await recordPushed(cache.state.dir, t, pushed[i]!, cache.state.layerRecord);
      if (cache.state.layerRecord !== undefined) cache.state.layerRecord = written;
    }
    savePostState(postState); // the post step signs the record only if it is still the one written here
  }
  return { pushed, image };
}

/** push: false: the digest computed once stands for every repository `tags` names (each would get the
 *  same image); the layers were made once, for the first. */
function computedFor(to: Destinations, computed: PushResult): PushResult[] {
  return [computed, ...to.groups.slice(1).map(() => ({ ...computed, layersMade: 0, bytesUploaded: 0, bytesSkipped: 0 }))];
}

/** The image's digest as a referrer's subject. */
const subjectOf = (p: PushResult) => ({ mediaType: p.manifest.mediaType, digest: p.digest, size: p.manifest.bytes.length });

/**
 * The SBOM and provenance of the image just pushed, written under RUNNER_TEMP and, with sbom-attach,
 * attached to it in every repository. The image is pushed already: a failure here is a warning, unless
 * sbom-attach asked for the documents to go with the image.
 */
async function documents(inputs: ActionInputs, nix: NixSetup, job: Job, to: Destinations, built: { resolved: ResolvedImage; image: ImageToPush; pushed: PushResult[] }, startedOn: Date): Promise<Documents> {
  const first = built.pushed[0]!;
  const target = to.groups[0]!.target;
  try {
    const storePaths = inputs.sbom === false ? undefined : await imageStorePaths({ layers: first.layers.map((l) => l.storePaths), diffIDs: first.layers.map((l) => l.diffID), ...(built.image.source ? { archive: built.image.source } : {}) });
    const docs = await writeImageDocuments({
      nix: nix.nix,
      env: job.env,
      flake: inputs.flake,
      attr: inputs.attr,
      buildArgs: job.buildArgs,
      storePaths,
      subject: { registry: target.registry, repository: target.repository, digest: first.digest },
      ...(built.resolved.drvPath ? { drvPath: built.resolved.drvPath } : {}),
      outPath: built.resolved.outPath,
      nixVersion: nix.version,
      format: inputs.sbom,
      tmpDir: stepTempDir('nix-image-documents-'),
      startedOn,
    });
    const attached = inputs.sbomAttach ? await attachImageDocuments(to.targets, subjectOf(first), docs, logger) : [];
    return { docs, attached };
  } catch (error) {
    const image = first.pushed ? `the image is pushed (${target.registry}/${target.repository}@${first.digest})` : `the image is built (${first.digest}, not pushed)`;
    const line = `${image}; ${inputs.sbomAttach ? 'attaching' : 'writing'} its SBOM and provenance failed: ${errorLine(error)}`;
    if (inputs.sbomAttach) throw new Error(line);
    core.warning(line);
    return { docs: { notes: [`no SBOM or provenance: ${errorLine(error)}`] } };
  }
}

/** An unchanged image's SBOM and provenance: what is attached to it (nothing is built to write them). */
async function attachedDocuments(inputs: ActionInputs, to: Destinations, pushed: PushResult[]): Promise<Documents> {
  try {
    return { docs: await fetchAttachedDocuments(to.targets[0]!.client, subjectOf(pushed[0]!), stepTempDir('nix-image-documents-'), { format: inputs.sbom }), fetched: true };
  } catch (error) {
    core.warning(`the image's attached SBOM and provenance could not be read: ${errorLine(error)}`);
    return { docs: { notes: [`no SBOM or provenance: ${errorLine(error)}`] } };
  }
}

async function run(): Promise<void> {
  const started = Date.now();
  // The runner's proxy: its password masked, a URL the action cannot use refused in one line.
  for (const secret of proxySecrets()) core.setSecret(secret);
  const badProxy = proxyProblem();
  if (badProxy) throw new Error(badProxy);
  const inputs = readInputs();
  const unproxied = proxyWarning();
  if (unproxied) core.warning(unproxied);
  const to = await connectRegistries(inputs, { logger, onSecret: (s) => core.setSecret(s) });
  try {
    await (inputs.merge.length > 0 && to.targets.length > 0 ? merge(inputs, to, started) : buildAndPush(inputs, to, started));
  } finally {
    for (const t of to.targets) t.client.close(); // no idle connection holds the step open
  }
}

/** The job: Nix set up, the image evaluated, taken from the registry or built, pushed, reported. */
async function buildAndPush(inputs: ActionInputs, to: Destinations, started: number): Promise<void> {
  const clock = new PhaseClock();
  const nix = await setupNix({
    installNix: inputs.installNix,
    nixVersion: inputs.nixVersion,
    installUrl: inputs.nixInstallUrl || undefined,
    sha256: inputs.nixSha256 || undefined,
    githubToken: inputs.githubToken || undefined,
    extraNixConf: inputs.extraNixConf || undefined,
    // Flake code that reads the environment or any file gets no token: Nix is then given none.
    impure: evaluatesImpurely(splitArgs(inputs.buildArgs), [inputs.extraNixConf, process.env.NIX_CONFIG ?? '']),
  });
  clock.lap('install');
  try {
    await pushWithNix(inputs, to, started, nix, clock);
  } finally {
    forgetSecretSettings(); // no later Nix process of this step gets the token
  }
}

/** Everything after Nix is set up: evaluated, taken from the registry or built, pushed, documented, reported. */
async function pushWithNix(inputs: ActionInputs, to: Destinations, started: number, nix: NixSetup, clock: PhaseClock): Promise<void> {
  const job = await evaluate(inputs, nix);
  clock.lap('evaluate');
  const reportPush = reporter(inputs, to, clock);
  if (await pushedBefore(inputs, job, to, reportPush, nix, clock)) return;
  clock.lap(); // the registry lookup is not the restore's time

  const { cache, resolved, binaryCache, state } = await build(inputs, nix, job, clock);
  clock.lap(); // the build's own time is the build's (resolved.seconds)
  const { pushed, image } = await push(inputs, job, to, { resolved, cache, state });
  clock.lap('push'); // every repository, its copies and its tags
  const docs = await documents(inputs, nix, job, to, { resolved, image, pushed }, new Date(started));
  const metadata = await reportPush(pushed, {
    documents: docs,
    storePath: resolved.outPath,
    format: image.format,
    nixVersion: nix.version,
    cacheHit: cache.hit,
    cache: { restored: cache.hit === 'false' ? undefined : cache.restored, note: cache.note },
    ...(binaryCache ? { binaryCache } : {}),
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
