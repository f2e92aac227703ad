// The main step: only wiring. inputs → nix (install, cache restore, build) → image → registry → report.
import './threadpool.js'; // first: sizes the thread pool before anything starts it
import * as core from '@actions/core';
import { envInputReader, parseInputs } from './inputs/index.js';
import { setupNix } from './nix/install.js';
import { restoreStoreCache, untrustedCacheWarning } from './nix/cache.js';
import { buildImageOutput, derivationOf, splitArgs } from './nix/build.js';
import { detectSource } from './image/format.js';
import { resolveCredentials } from './registry/credentials.js';
import { RegistryClient } from './registry/client.js';
import { parseImageName, validateTag } from './registry/reference.js';
import { pushImage } from './registry/push.js';
import { report } from './report/index.js';
import { savePostState, type PostState } from './state.js';
import { actionLogger, errorLine } from './log.js';

async function run(): Promise<void> {
  const inputs = parseInputs(envInputReader());
  if (inputs.password) core.setSecret(inputs.password);
  if (inputs.githubToken) core.setSecret(inputs.githubToken);
  const target = parseImageName(inputs.registry, inputs.image);
  inputs.tags.forEach((t) => validateTag(t));
  inputs.reuseTags.forEach((t) => validateTag(t, 'reuse-tags'));
  const buildArgs = splitArgs(inputs.buildArgs);
  const logger = actionLogger();

  // Reach the registry and check the credentials before a long build, so a typo fails in seconds.
  let client: RegistryClient | undefined;
  if (inputs.push) {
    const credentials = resolveCredentials({
      registry: target.registry,
      username: inputs.username,
      password: inputs.password,
      githubToken: inputs.githubToken,
    });
    if (credentials) core.setSecret(credentials.password);
    client = new RegistryClient({
      registry: target.apiHost,
      repository: target.repository,
      insecure: inputs.insecure,
      credentials,
      logger,
    });
    await client.ping();
  }

  const nix = await setupNix({
    installNix: inputs.installNix,
    nixVersion: inputs.nixVersion,
    installUrl: inputs.nixInstallUrl || undefined,
    sha256: inputs.nixSha256 || undefined,
    githubToken: inputs.githubToken || undefined,
    extraNixConf: inputs.extraNixConf || undefined,
  });

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

  const env = { ...process.env, ...nix.env, ...cache.env };
  const build = { nix: nix.nix, installable: `${inputs.flake}#${inputs.attr}`, buildArgs, env };
  const built = await buildImageOutput(build).catch(async (error: unknown) => {
    // What a failed build did build is kept for the next attempt: the post step saves it from here.
    if (state.cache) {
      state.drvPath = await derivationOf(build);
      savePostState(state);
    }
    throw error;
  });
  state.storePath = built.storePath;
  state.drvPath = built.drvPath;
  savePostState(state);
  core.info(`built ${built.storePath} in ${built.seconds.toFixed(1)} s`);
  const untrusted = untrustedCacheWarning(built.ignoredSubstituters);
  if (untrusted) core.warning(untrusted);

  const source = await detectSource(built.storePath);
  core.info(`image format: ${source.format} (${source.path})`);
  const pushed = await pushImage({
    source,
    client,
    tags: inputs.tags,
    reuseTags: inputs.reuseTags,
    logger,
    tmpDir: process.env.RUNNER_TEMP || undefined,
  });

  const metadata = await report({
    registry: target.registry,
    repository: target.repository,
    tags: inputs.tags,
    storePath: built.storePath,
    format: source.format,
    nixVersion: nix.version,
    cacheHit: cache.hit,
    cache: { restored: cache.hit === 'false' ? undefined : cache.restored, note: cache.note },
    buildSeconds: built.seconds,
    push: pushed,
  });
  core.info(
    `${pushed.pushed ? 'pushed' : 'computed (push: false)'} ${metadata.image}: ` +
      `${metadata.layers.uploaded} layer(s) uploaded, ${metadata.layers.skipped} already there`,
  );
}

run().catch((error: unknown) => {
  core.setFailed(errorLine(error));
});
