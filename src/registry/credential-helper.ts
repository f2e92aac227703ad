// Docker credential helpers: `docker-credential-<name> get` reads the server URL on stdin and writes
// {"ServerURL","Username","Secret"} on stdout, or exits non-zero saying the credentials are not found.
// The protocol of docker/docker-credential-helpers, as docker, skopeo and go-containerregistry call it; a
// Username of `<token>` means the Secret is an identity token (an OAuth2 refresh token).
import { execFileSync } from 'node:child_process';
import type { Credentials } from './types.js';

export class CredentialHelperError extends Error {
  override name = 'CredentialHelperError';
}

/** How long a helper may take (one that prompts, or talks to a cloud API). */
const HELPER_TIMEOUT_MS = 60_000;

/** Username a helper gives for an identity (OAuth refresh) token rather than a password. */
const IDENTITY_TOKEN_USER = '<token>';

/**
 * Runs `docker-credential-<helper> get` for `serverUrl`. Undefined when the helper says it has no
 * credentials for it; a CredentialHelperError (one line, never the secret) when it cannot be run or
 * answers something else.
 */
export function helperGet(helper: string, serverUrl: string, where: string, env: NodeJS.ProcessEnv = process.env): Credentials | undefined {
  if (!/^[\w.-]+$/.test(helper)) throw new CredentialHelperError(`${where} names credential helper "${helper}", which is not a helper name`);
  const program = `docker-credential-${helper}`;
  let stdout: string;
  try {
    stdout = execFileSync(program, ['get'], { input: serverUrl, env, encoding: 'utf8', timeout: HELPER_TIMEOUT_MS, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 1 << 20 });
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { status?: number | null; stdout?: string; stderr?: string; signal?: string | null };
    if (e.code === 'ENOENT') throw new CredentialHelperError(`${where} names credential helper ${helper}, but ${program} is not on PATH`);
    const said = `${e.stdout ?? ''} ${e.stderr ?? ''}`.trim().replace(/\s+/g, ' ');
    if (/credentials not found/i.test(said)) return undefined;
    if (e.code === 'ETIMEDOUT' || e.signal === 'SIGTERM') throw new CredentialHelperError(`${program} get (${where}) gave no answer within ${HELPER_TIMEOUT_MS / 1000} s`);
    throw new CredentialHelperError(`${program} get (${where}) failed${e.status != null ? ` with exit code ${e.status}` : ''}${said ? `: ${said.slice(0, 200)}` : ''}`);
  }
  let parsed: { Username?: unknown; Secret?: unknown };
  try {
    parsed = JSON.parse(stdout) as typeof parsed;
  } catch {
    throw new CredentialHelperError(`${program} get (${where}) answered with something that is not JSON`);
  }
  const { Username: username, Secret: password } = parsed;
  if (typeof username !== 'string' || typeof password !== 'string' || password === '') {
    throw new CredentialHelperError(`${program} get (${where}) answered without a Username and Secret`);
  }
  // An identity token (an OAuth2 refresh token), as docker takes it: sent in a refresh_token grant.
  if (username === IDENTITY_TOKEN_USER) return { username, password: '', identityToken: password };
  return { username, password };
}
