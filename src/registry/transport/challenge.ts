// WWW-Authenticate challenges: `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.

export interface Challenge {
  scheme: 'basic' | 'bearer' | 'other';
  params: Record<string, string>;
}

export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*(\S+)\s*(.*)$/.exec(header);
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
    params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return { scheme: scheme === 'basic' ? 'basic' : scheme === 'bearer' ? 'bearer' : 'other', params };
}
