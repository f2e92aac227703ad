// The runner's proxy settings, for every request the action makes itself: the registries, token realms and
// blob storage (registry/transport/http.ts), a binary cache's upstream (nix/cache-http.ts) and the REST API
// of cache-purge (nix/purge.ts). HTTPS_PROXY / https_proxy, HTTP_PROXY / http_proxy and NO_PROXY /
// no_proxy are read as curl and @actions/* read them, by Node's own agents (the `proxyEnv` option, Node
// 24.5 on; an older Node ignores it). An https request goes through a CONNECT tunnel: the proxy sees the
// host, never the credentials. Nix and @actions/cache read the same variables themselves; the loopback
// front a binary cache is served to Nix through is added to Nix's NO_PROXY, as no proxy can reach it.
import * as http from 'node:http';
import * as https from 'node:https';

const NAMES = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy'] as const;

/** The proxy variables the environment sets, or undefined when it names no proxy. */
export function proxyEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> | undefined {
  const set = Object.fromEntries(NAMES.filter((n) => env[n]).map((n) => [n, env[n]!]));
  return set.HTTPS_PROXY || set.https_proxy || set.HTTP_PROXY || set.http_proxy ? set : undefined;
}

/** Agent options that send requests through the environment's proxy, if it names one. */
export function proxyOptions(env: NodeJS.ProcessEnv = process.env): { proxyEnv?: Record<string, string> } {
  const p = proxyEnv(env);
  return p ? { proxyEnv: p } : {};
}

let agents: { key: string; http: http.Agent; https: https.Agent } | undefined;

/** The agent for a one-off request to `url`: undefined (Node's global agent) when no proxy is set. Idle
 *  kept-alive sockets hold no step open (Node unrefs them). */
export function agentFor(url: URL): http.Agent | undefined {
  const p = proxyEnv();
  if (!p) return undefined;
  const key = JSON.stringify(p);
  if (agents?.key !== key) agents = { key, http: new http.Agent({ keepAlive: true, proxyEnv: p }), https: new https.Agent({ keepAlive: true, proxyEnv: p }) };
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
