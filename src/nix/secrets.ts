// The secrets inside the Nix inputs, for core.setSecret: the userinfo of nix-install-url
// (https://user:token@host/…) and, in extra-nix-conf, access-tokens values, any password/token/secret
// setting, and netrc-style "password VALUE" pairs. Masked before anything can print them. And whether
// build-args let flake code read what Nix reads.
import * as core from '@actions/core';

function decoded(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The userinfo of a URL as written, its password (or, alone, its user name: a token), also percent-decoded. */
export function urlSecrets(url: string): string[] {
  const m = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)@/i.exec(url.trim());
  if (!m || m[1] === '') return [];
  const userinfo = m[1]!;
  const colon = userinfo.indexOf(':');
  const secret = colon >= 0 && colon < userinfo.length - 1 ? userinfo.slice(colon + 1) : colon >= 0 ? userinfo.slice(0, colon) : userinfo;
  return unique([userinfo, secret, decoded(secret)]);
}

/** A nix.conf setting whose value is a secret (not a path to one: secret-key-files names files). */
const SECRET_SETTING = /(password|passwd|token|secret)/i;

/** Whether a setting's value is a secret: access-tokens, or a password/token/secret setting that does
 *  not name files. `extra-` settings are their base setting's. */
export function isSecretSetting(name: string): boolean {
  const base = name.replace(/^extra-/, '');
  return base === 'access-tokens' || (SECRET_SETTING.test(base) && !/-files?$/.test(base));
}

/** The tokens of an access-tokens value (`host=token …`; a GitLab token may carry a type: PAT:xxxx). */
function accessTokens(value: string): string[] {
  const out: string[] = [];
  for (const item of value.split(/\s+/)) {
    const eq = item.indexOf('=');
    if (eq < 0 || eq === item.length - 1) continue;
    const token = item.slice(eq + 1);
    out.push(token);
    const typed = /^(?:PAT|OAuth2):(.+)$/i.exec(token);
    if (typed) out.push(typed[1]!);
  }
  return out;
}

/** A user name alone in a URL taken for a token: over HTTP(S), and as long as tokens are (`git@`, `nix@`
 *  of an ssh:// URL are user names, and masking them would hide every "nix" in the job's log). */
const TOKEN_AS_USER = 20;

/** The credentials of every URL in a value: a password (`https://user:pass@cache`), or an HTTP(S) user name
 *  long enough to be a token (`https://ghp_…@github.com/…`). */
function valueUrlSecrets(value: string): string[] {
  return value.split(/\s+/).flatMap((item) => {
    const [userinfo, ...secret] = urlSecrets(item);
    if (userinfo === undefined) return [];
    const user = userinfo.replace(/:$/, '');
    if (user.includes(':')) return secret; // a password: as written and decoded
    return /^(?:[a-z0-9.-]+\+)?https?:\/\//i.test(item) && user.length >= TOKEN_AS_USER ? [user] : [];
  });
}

/**
 * The secrets in build-args, for masking: the value of a secret setting given as `--option NAME VALUE`,
 * `--NAME VALUE` or `--extra-NAME VALUE` (Nix takes every setting as a flag), and the credentials of any
 * URL an argument holds.
 */
export function buildArgSecrets(args: string[]): string[] {
  const out: string[] = [];
  for (const [i, arg] of args.entries()) {
    const setting = secretSettingOf(args, i);
    if (setting !== undefined) out.push(arg, ...(setting.replace(/^extra-/, '') === 'access-tokens' ? accessTokens(arg) : []));
    out.push(...valueUrlSecrets(arg));
  }
  return unique(out);
}

/** The secret setting whose value `args[i]` is (`--option NAME args[i]`, `--NAME args[i]`), if any. */
export function secretSettingOf(args: string[], i: number): string | undefined {
  if (args[i - 2] === '--option' && isSecretSetting(args[i - 1] ?? '')) return args[i - 1];
  if (args[i - 1] === '--option' || args[i - 2] === '--option') return undefined;
  const flag = /^--([a-z][a-z0-9-]*)$/.exec(args[i - 1] ?? '')?.[1];
  return flag !== undefined && isSecretSetting(flag) ? flag : undefined;
}

/** Secret values in nix.conf lines. */
export function nixConfSecrets(conf: string): string[] {
  const out: string[] = [];
  for (const raw of conf.split(/\r?\n/)) {
    const line = raw.replace(/#.*$/, ''); // Nix ignores everything after '#'
    const setting = /^\s*([A-Za-z0-9_-]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (setting && /^(extra-)?access-tokens$/.test(setting[1]!)) {
      out.push(...accessTokens(setting[2]!));
    } else if (setting && isSecretSetting(setting[1]!) && setting[2] !== '') {
      out.push(setting[2]!);
    }
    // Credentials in a URL (extra-substituters = https://user:pass@cache…): Nix prints substituter URLs.
    if (setting) out.push(...valueUrlSecrets(setting[2]!));
    for (const pair of line.matchAll(/\b(?:password|passwd)\s+([^\s=]\S*)/gi)) out.push(pair[1]!);
  }
  return unique(out);
}

function unique(values: string[]): string[] {
  return [...new Set(values.filter((v) => v.trim() !== ''))];
}

const FALSE = /^(false|0|no)$/i;
const TRUE = /^(true|1|yes)$/i;

/** A nix.conf line turning evaluation impure: `pure-eval = false`, or native code allowed in evaluation. */
function impureSetting(line: string): boolean {
  const m = /^\s*(?:extra-)?([A-Za-z0-9-]+)\s*=\s*(\S*)/.exec(line.replace(/#.*$/, ''));
  if (!m) return false;
  return (m[1] === 'pure-eval' && FALSE.test(m[2]!)) || (m[1] === 'allow-unsafe-native-code-during-evaluation' && TRUE.test(m[2]!));
}

/**
 * Whether flake evaluation can be impure: build-args (--impure, --no-pure-eval, --option pure-eval false,
 * native code allowed in evaluation, which runs programs), or a line of extra-nix-conf or of the
 * environment's NIX_CONFIG that does the same. Then flake code can read the environment and any file Nix
 * can read, so Nix must hold no secret, and the derivation does not fix the image.
 */
export function evaluatesImpurely(buildArgs: string[], nixConf: string[] = []): boolean {
  const args = buildArgs.some(
    (arg, i) =>
      arg === '--impure' ||
      arg === '--no-pure-eval' ||
      arg === '--allow-unsafe-native-code-during-evaluation' ||
      (arg === '--option' && buildArgs[i + 1] === 'pure-eval' && FALSE.test(buildArgs[i + 2] ?? '')) ||
      (arg === '--option' && buildArgs[i + 1] === 'allow-unsafe-native-code-during-evaluation' && TRUE.test(buildArgs[i + 2] ?? '')),
  );
  return args || nixConf.some((conf) => conf.split(/\r?\n/).some(impureSetting));
}

/** Masks the secrets of nix-install-url, extra-nix-conf and build-args (`args`, split) in the job's log; returns them. */
export function maskNixSecrets(inputs: { nixInstallUrl?: string; extraNixConf?: string; args?: string[] }, setSecret: (v: string) => void = core.setSecret): string[] {
  const secrets = unique([...urlSecrets(inputs.nixInstallUrl ?? ''), ...nixConfSecrets(inputs.extraNixConf ?? ''), ...buildArgSecrets(inputs.args ?? [])]);
  for (const s of secrets) setSecret(s);
  return secrets;
}
