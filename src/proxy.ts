// The runner's proxy settings, for every request the action makes itself: the registries, token realms and
// blob storage (registry/transport/http.ts), a binary cache's upstream (nix/cache-http.ts) and the REST API
// of cache-purge (nix/purge.ts). Read as @actions/http-client reads them (the lower-case name first):
// https_proxy / HTTPS_PROXY, http_proxy / HTTP_PROXY, no_proxy / NO_PROXY, handed to Node's own agents
// (the `proxyEnv` option, Node 24.5 on; an older Node ignores it, and main warns). NO_PROXY is read as curl
// reads it: `example.com` and `.example.com` both cover the domain and its subdomains, `*` everything,
// an IPv4 CIDR its range; loopback is never proxied. An https request goes through a CONNECT tunnel: the
// proxy sees the host, never the credentials. Nix and @actions/cache read the same variables themselves;
// the loopback front a binary cache is served to Nix through is added to Nix's NO_PROXY.
import * as http from 'node:http';
import * as https from 'node:https';
import { isIPv4 } from 'node:net';

/** Always reached directly, as @actions/http-client does: no proxy reaches the runner's loopback. */
const LOOPBACK = ['localhost', '.localhost', '127.0.0.0-127.255.255.255', '::1'];

const proxyVar = (env: NodeJS.ProcessEnv, name: 'https_proxy' | 'http_proxy'): [string, string] | undefined => {
  const lower = env[name];
  if (lower) return [name, lower];
  const upper = env[name.toUpperCase()];
  return upper ? [name.toUpperCase(), upper] : undefined;
};

/** Why a proxy variable cannot be used (one line, without its credentials), else undefined. */
function badProxy(name: string, value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value.includes('://') ? value : `http://${value}`);
  } catch {
    return `${name} is not a proxy URL (expected http://host:port)`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `${name} names a ${url.protocol.replace(/:$/, '')} proxy; only http:// and https:// proxies are supported`;
  if (!url.hostname) return `${name} names no proxy host (expected http://host:port)`;
  return undefined;
}

/** The first problem with the proxy variables, for main to fail on, else undefined. */
export function proxyProblem(env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const v of [proxyVar(env, 'https_proxy'), proxyVar(env, 'http_proxy')]) {
    const problem = v && badProxy(...v);
    if (problem) return problem;
  }
  return undefined;
}

/** The passwords in the proxy URLs, to be masked. */
export function proxySecrets(env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  for (const v of [proxyVar(env, 'https_proxy'), proxyVar(env, 'http_proxy')]) {
    // Also from a URL the action refuses: the user's password is masked all the same. The userinfo runs to
    // the authority's last @, as the URL parser (and so Node's proxy support) reads it: `user:p@ss@host`.
    const userinfo = v ? /^(?:[a-z][a-z0-9+.-]*:\/\/)?([^/?#]*)@/i.exec(v[1])?.[1] : undefined;
    const colon = userinfo?.indexOf(':') ?? -1;
    const password = colon >= 0 ? userinfo!.slice(colon + 1) : undefined;
    if (!password) continue;
    out.push(password);
    try {
      const parsed = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(v![1]) ? v![1] : `http://${v![1]}`).password;
      if (parsed) out.push(parsed); // as the URL parser encodes it (p%40ss)
    } catch {
      // not a URL: the raw form is masked
    }
    try {
      out.push(decodeURIComponent(password));
    } catch {
      // not percent-encoded
    }
  }
  return [...new Set(out)];
}

/** An IPv4 CIDR as the range Node's NO_PROXY takes (`a.b.c.d-e.f.g.h`), else undefined. */
function cidrRange(entry: string): string | undefined {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(entry);
  if (!m || !isIPv4(m[1]!) || Number(m[2]) > 32) return undefined;
  const ip = m[1]!.split('.').reduce((n, o) => n * 256 + Number(o), 0);
  const size = 2 ** (32 - Number(m[2]));
  const start = Math.floor(ip / size) * size;
  const dotted = (n: number) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
  return `${dotted(start)}-${dotted(start + size - 1)}`;
}

/** A NO_PROXY list as curl reads it, in the forms Node's matcher takes, loopback included. */
export function noProxyList(value: string): string {
  const out: string[] = [];
  for (const raw of value.split(',').map((s) => s.trim()).filter(Boolean)) {
    const entry = raw.toLowerCase();
    const range = cidrRange(entry);
    if (range) out.push(range);
    else if (entry === '*' || isIPv4(entry) || entry.includes(':') || /^[\d.]+-[\d.]+$/.test(entry)) out.push(entry);
    else {
      const domain = entry.replace(/^\*?\./, '');
      out.push(domain, `.${domain}`);
    }
  }
  return [...new Set([...out, ...LOOPBACK])].join(',');
}

/** The proxy settings for Node's agents, or undefined when the environment names no (usable) proxy. */
export function proxyEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> | undefined {
  const https = proxyVar(env, 'https_proxy');
  const http = proxyVar(env, 'http_proxy');
  const set: Record<string, string> = {};
  if (https && !badProxy(...https)) set.HTTPS_PROXY = https[1];
  if (http && !badProxy(...http)) set.HTTP_PROXY = http[1];
  if (!set.HTTPS_PROXY && !set.HTTP_PROXY) return undefined;
  set.NO_PROXY = noProxyList(env.no_proxy || env.NO_PROXY || '');
  return set;
}

/** Agent options that send requests through the environment's proxy, if it names one. */
export function proxyOptions(env: NodeJS.ProcessEnv = process.env): { proxyEnv?: Record<string, string> } {
  const p = proxyEnv(env);
  return p ? { proxyEnv: p } : {};
}

/** The proxy variables as set, to tell whether they changed since the agents were made. */
const VARIABLES = ['https_proxy', 'HTTPS_PROXY', 'http_proxy', 'HTTP_PROXY', 'no_proxy', 'NO_PROXY'] as const;
let agents: { key: string; http?: http.Agent; https?: https.Agent } | undefined;

/** The agent for a one-off request to `url`: undefined (Node's global agent) when no proxy is set. Made
 *  once for the variables as they stand (a binary cache's front asks for one per request). Idle kept-alive
 *  sockets hold no step open (Node unrefs them). */
export function agentFor(url: URL): http.Agent | undefined {
  const key = VARIABLES.map((n) => process.env[n] ?? '').join('\0');
  if (agents?.key !== key) {
    const p = proxyEnv();
    agents = p ? { key, http: new http.Agent({ keepAlive: true, proxyEnv: p }), https: new https.Agent({ keepAlive: true, proxyEnv: p }) } : { key };
  }
  return url.protocol === 'https:' ? agents.https : agents.http;
}

/** NO_PROXY and no_proxy with `host` added, when the environment names a proxy (else nothing to add). */
export function bypassFor(host: string, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  if (!proxyEnv(env)) return {};
  const current = env.no_proxy || env.NO_PROXY || '';
  const list = current.split(',').map((s) => s.trim()).filter(Boolean);
  const value = list.includes(host) || list.includes('*') ? current : [...list, host].join(',');
  return { NO_PROXY: value, no_proxy: value };
}

/** Whether this Node's agents take `proxyEnv` (Node 24.5 on). */
export function nodeProxies(version: string = process.versions.node): boolean {
  const [major, minor] = version.split('.').map(Number) as [number, number];
  return major > 24 || (major === 24 && minor >= 5);
}

/** A warning for a proxy this Node cannot use, else undefined. */
export function proxyWarning(env: NodeJS.ProcessEnv = process.env, version: string = process.versions.node): string | undefined {
  if (!proxyEnv(env) || nodeProxies(version)) return undefined;
  return `HTTPS_PROXY or HTTP_PROXY is set, but Node ${version} has no built-in proxy support (24.5 and later have it): the action's own requests go direct`;
}

/** A proxy's refusal to open a tunnel (Node's ERR_PROXY_TUNNEL), in one line without the proxy's
 *  credentials, else undefined. */
export function tunnelRefusal(host: string, e: NodeJS.ErrnoException & { statusCode?: number }): string | undefined {
  if (e.code !== 'ERR_PROXY_TUNNEL') return undefined;
  const status = /HTTP\/[\d.]+ (\d{3}[^\r\n]*)/.exec(e.message)?.[1] ?? (e.statusCode ? String(e.statusCode) : 'no answer');
  return `the proxy (HTTPS_PROXY) did not open a tunnel to ${host}: ${status}${e.statusCode === 407 ? ' (the proxy wants credentials: put them in its URL, http://user:password@host:port)' : ''}`;
}
