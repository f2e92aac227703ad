// Which credentials to send: the inputs, else github-token for ghcr.io, else the Docker config file
// (as docker/login-action leaves it), else none (anonymous). In the Docker config: the registry's
// credential helper (`credHelpers`), else its `auths` entry, else the default helper (`credsStore`), each
// helper run as `docker-credential-<name> get`. Whatever a helper returns is a secret like the password
// input: the caller masks it.
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

export function fromDockerConfig(registry: string, env: NodeJS.ProcessEnv = process.env): Credentials | undefined {
  const dir = env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker');
  const file = join(dir, 'config.json');
  if (!existsSync(file)) return undefined;
  let config: DockerConfig;
  try {
    config = JSON.parse(readFileSync(file, 'utf8')) as DockerConfig;
  } catch {
    return undefined;
  }
  const keys = configKeys(registry);
  const where = `${file}`;
  const helper = keys.map((k) => config.credHelpers?.[k]).find((h) => typeof h === 'string' && h !== '');
  if (helper) return helperGet(helper, helperServer(registry), `credHelpers of ${where} for ${registry}`, env);
  for (const key of keys) {
    const entry = config.auths?.[key];
    if (!entry) continue;
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const at = decoded.indexOf(':');
      if (at > 0) return { username: decoded.slice(0, at), password: decoded.slice(at + 1) };
    }
    if (entry.username && entry.password) return { username: entry.username, password: entry.password };
  }
  if (typeof config.credsStore === 'string' && config.credsStore !== '') {
    return helperGet(config.credsStore, helperServer(registry), `credsStore of ${where}`, env);
  }
  return undefined;
}

export function resolveCredentials(s: CredentialSources): Credentials | undefined {
  if (s.password !== '') {
    if (s.username === '') throw new InputError('username', 'is empty but password is set: give the user name the password belongs to');
    return { username: s.username, password: s.password };
  }
  if (s.registry === 'ghcr.io' && s.githubToken !== '') {
    return { username: s.username || 'github-actions', password: s.githubToken };
  }
  return fromDockerConfig(s.registry, s.env);
}
