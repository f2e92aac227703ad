// Which credentials to send: the inputs, else github-token for ghcr.io, else the Docker config file
// (as docker/login-action leaves it), else none (anonymous). In the Docker config: the registry's
// credential helper (`credHelpers`), else its `auths` entry (an `identitytoken` before a password), else
// the default helper (`credsStore`), each helper run as `docker-credential-<name> get`, and run again
// once when the registry rejects what it gave mid-job. Whatever a helper returns is a secret like the
// password input: the caller masks it.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../inputs/index.js';
import { helperGet } from './credential-helper.js';
import { isDockerHub } from './constants.js';
import type { Credentials } from './types.js';

export interface CredentialSources {
  registry: string;
  username: string;
  password: string;
  githubToken: string;
  /** Defaults to process.env (DOCKER_CONFIG, HOME). */
  env?: NodeJS.ProcessEnv;
}

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  /** registry host → helper name (docker-credential-<name>). */
  credHelpers?: Record<string, string>;
  /** The helper for every registry without an entry of its own. */
  credsStore?: string;
}

/** The server URL a helper files a registry under: the host, or Docker Hub's historical URL. */
function helperServer(registry: string): string {
  return isDockerHub(registry) ? 'https://index.docker.io/v1/' : registry;
}

/** The keys a Docker config may file a registry under. */
function configKeys(registry: string): string[] {
  const keys = [registry, `https://${registry}`, `http://${registry}`, `https://${registry}/v1/`, `https://${registry}/v2/`];
  if (isDockerHub(registry)) keys.push('https://index.docker.io/v1/', 'index.docker.io', 'docker.io');
  return keys;
}

/** Credentials, and how to ask for them again when they came from a credential helper (whose answers
 *  may expire during a job: ECR's 12-hour tokens, a cloud's short-lived access tokens). */
export interface CredentialSource {
  credentials?: Credentials;
  /** Runs the helper again (synchronously, as the first time). */
  reload?: () => Credentials | undefined;
}

function dockerConfigSource(registry: string, env: NodeJS.ProcessEnv): CredentialSource {
  const dir = env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker');
  const file = join(dir, 'config.json');
  if (!existsSync(file)) return {};
  let config: DockerConfig;
  try {
    config = JSON.parse(readFileSync(file, 'utf8')) as DockerConfig;
  } catch {
    return {};
  }
  const keys = configKeys(registry);
  const where = `${file}`;
  const fromHelper = (helper: string, what: string): CredentialSource => {
    const get = (): Credentials | undefined => helperGet(helper, helperServer(registry), what, env);
    const credentials = get();
    return credentials ? { credentials, reload: get } : {};
  };
  const helper = keys.map((k) => config.credHelpers?.[k]).find((h) => typeof h === 'string' && h !== '');
  if (helper) return fromHelper(helper, `credHelpers of ${where} for ${registry}`);
  for (const key of keys) {
    const entry = config.auths?.[key];
    if (!entry) continue;
    let user: string | undefined;
    let password: string | undefined;
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const at = decoded.indexOf(':');
      if (at > 0) [user, password] = [decoded.slice(0, at), decoded.slice(at + 1)];
    }
    user ??= entry.username;
    password ||= entry.password;
    // An identity token (docker login's refresh token; `az acr login` writes one, user 00000000-…) goes
    // before any password, as docker sends it.
    if (entry.identitytoken) return { credentials: { username: user || '<token>', password: '', identityToken: entry.identitytoken } };
    if (user && password) return { credentials: { username: user, password } };
  }
  if (typeof config.credsStore === 'string' && config.credsStore !== '') return fromHelper(config.credsStore, `credsStore of ${where}`);
  return {};
}

export function fromDockerConfig(registry: string, env: NodeJS.ProcessEnv = process.env): Credentials | undefined {
  return dockerConfigSource(registry, env).credentials;
}

/** The credentials to send, and (from a credential helper) how to ask for them again. */
export function resolveCredentialSource(s: CredentialSources): CredentialSource {
  if (s.password !== '') {
    if (s.username === '') throw new InputError('username', 'is empty but password is set: give the user name the password belongs to');
    return { credentials: { username: s.username, password: s.password } };
  }
  if (s.registry === 'ghcr.io' && s.githubToken !== '') {
    return { credentials: { username: s.username || 'github-actions', password: s.githubToken } };
  }
  return dockerConfigSource(s.registry, s.env ?? process.env);
}

export function resolveCredentials(s: CredentialSources): Credentials | undefined {
  return resolveCredentialSource(s).credentials;
}
