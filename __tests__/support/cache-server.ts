// A loopback server that speaks what the bundled @actions/cache (v6) speaks to GitHub, storing entries on disk.
//
// Cache service v2 (github.com; @actions/cache uses it when ACTIONS_CACHE_SERVICE_V2 is set and
// GITHUB_SERVER_URL's host is github.com — lib/internal/config.js getCacheServiceVersion/isGhes):
//   Twirp JSON RPCs under /twirp/github.actions.results.api.v1.CacheService/ (lib/internal/shared/
//   cacheTwirpClient.js; request fields in proto names, e.g. restore_keys — generated/results/api/v1/
//   cache.twirp-client.js uses useProtoFieldName): CreateCacheEntry → signed_upload_url,
//   FinalizeCacheEntryUpload → entry_id, GetCacheEntryDownloadURL → signed_download_url + matched_key.
//   Uploads go to the signed URL with the Azure BlockBlobClient (lib/internal/uploadUtils.js
//   uploadCacheArchiveSDK: maxSingleShotSize 128 MiB): one Put Blob up to that size, above it
//   `comp=block&blockid=…` PUTs then one `comp=blocklist` PUT. A download URL whose host is not
//   *.blob.core.windows.net is fetched with one plain GET (lib/internal/cacheHttpClient.js downloadCache).
// Cache service v1 (GHES and any host other than github.com, even localhost): REST under
//   ACTIONS_CACHE_URL + _apis/artifactcache/ — GET cache?keys=&version= (204 on a miss), POST caches
//   (reserve → cacheId), PATCH caches/<id> with Content-Range chunks, POST caches/<id> {size} (commit).
// Faults: failWith answers every request with a status; hang takes every request and never answers it
//   (the socket stays open until stop(), as a cache service that accepts connections and then stalls);
//   faultOn narrows either to the requests whose "METHOD path?query" it matches.
// Matching, as GitHub documents it ("Matching a cache key"): the primary key exactly, then each restore
//   key as a prefix, newest entry first; always within the same version (a hash of the paths and the
//   compression method), so save and restore must pass identical paths.
// Scopes, as GitHub documents them ("Restrictions for accessing a cache"): an entry belongs to the ref
//   that saved it; a job sees its own ref's entries, then the default branch's (refs/heads/main here).
//   The runtime token carries the ref, as GitHub's does: env(protocol, { ref }) makes the token
//   `test-runtime-token;ref=<ref>` (no ref: the default branch). A key is unique within a ref.
// REST API for caches (GITHUB_API_URL, which env() points here): GET /repos/{o}/{r}/actions/caches
//   ?key=<key or prefix>&ref=<ref> lists entries ({ total_count, actions_caches: [{ id, key, ref, version,
//   size_in_bytes, … }] }); DELETE /repos/{o}/{r}/actions/caches?key=<key>[&ref=<ref>] deletes every entry
//   with that exact key (404 when none). `restWrite = false` answers DELETE 403, as a token without
//   actions: write gets. evict(key) removes an entry as GitHub's eviction would.
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';

export interface CacheEntry {
  id: number;
  key: string;
  version: string;
  size: number;
  committed: boolean;
  /** Order of creation: newer entries win prefix matches. */
  seq: number;
  file: string;
  /** The ref that saved it (from the runtime token). */
  ref: string;
  /** How it was uploaded: 'single' Put Blob, 'blocks' (comp=block + comp=blocklist), or 'chunks' (v1 PATCH). */
  upload?: 'single' | 'blocks' | 'chunks';
}

export interface CacheServer {
  url: string;
  entries: CacheEntry[];
  /** Every request: "METHOD path". */
  requests: string[];
  /** Environment that points @actions/cache at this server (v2 protocol unless 'v1'), and the REST API
   *  (GITHUB_API_URL); with ref, the job runs on that ref (GITHUB_REF and the runtime token's scope). */
  env(protocol?: 'v1' | 'v2', opts?: { ref?: string }): Record<string, string>;
  /** Whether the REST API lets tokens delete caches (actions: write); false: DELETE answers 403. */
  restWrite: boolean;
  /** Removes every entry with this key, as GitHub's eviction does; returns how many. */
  evict(key: string): number;
  /** Answer every request with this status from now on (undefined: behave). */
  failWith?: number;
  /** Take every request and never answer it from now on, as a stalled service (false: behave). */
  hang?: boolean;
  /** Apply failWith and hang only to the requests whose "METHOD path?query" this matches (undefined: all). */
  faultOn?: RegExp;
  /** Requests taken and left unanswered under hang. */
  hung: number;
  stop(): Promise<void>;
}

const TWIRP = '/twirp/github.actions.results.api.v1.CacheService/';
const DEFAULT_REF = 'refs/heads/main';
const TOKEN = 'test-runtime-token';

/** The ref a request's runtime token is scoped to. */
function refOf(req: IncomingMessage): string {
  const m = /;ref=(\S+)$/.exec(String(req.headers.authorization ?? ''));
  return m ? decodeURIComponent(m[1]!) : DEFAULT_REF;
}

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function json(res: ServerResponse, status: number, value: unknown): void {
  const bytes = Buffer.from(JSON.stringify(value));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length }).end(bytes);
}

export async function startCacheServer(): Promise<CacheServer> {
  const dir = await mkdtemp(join(tmpdir(), 'nia-cache-server-'));
  const entries: CacheEntry[] = [];
  const requests: string[] = [];
  const blocks = new Map<string, Buffer>();
  let seq = 0;
  let ids = 0;
  let base = '';

  const find = (key: string, restoreKeys: string[], version: string, ref: string): CacheEntry | undefined => {
    // The job's own ref first, then the default branch's.
    for (const scope of ref === DEFAULT_REF ? [ref] : [ref, DEFAULT_REF]) {
      const usable = entries.filter((e) => e.committed && e.version === version && e.ref === scope).sort((a, b) => b.seq - a.seq);
      const exact = usable.find((e) => e.key === key);
      if (exact) return exact;
      for (const prefix of restoreKeys) {
        const hit = usable.find((e) => e.key.startsWith(prefix));
        if (hit) return hit;
      }
    }
    return undefined;
  };
  const create = (key: string, version: string, ref: string): CacheEntry | undefined => {
    // GitHub refuses a second entry for the same key and version in a ref.
    if (entries.some((e) => e.key === key && e.version === version && e.ref === ref)) return undefined;
    const entry: CacheEntry = { id: ++ids, key, version, ref, size: 0, committed: false, seq: ++seq, file: join(dir, `${randomUUID()}.bin`) };
    entries.push(entry);
    return entry;
  };
  const byId = (id: string | undefined) => entries.find((e) => String(e.id) === id);

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const line = `${req.method} ${url.pathname}${url.search}`;
    requests.push(line);
    const faulty = !api.faultOn || api.faultOn.test(line);
    if (api.hang && faulty) {
      req.resume();
      api.hung++;
      return; // never answered; stop() closes the socket
    }
    if (api.failWith && faulty) {
      req.resume();
      json(res, api.failWith, { msg: 'injected failure' });
      return;
    }
    handle(req, res, url).catch((e: Error) => json(res, 500, { msg: e.message }));
  });

  async function handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname;
    const ref = refOf(req);
    // --- REST API for caches ---
    if (/^\/repos\/[^/]+\/[^/]+\/actions\/caches$/.test(path)) {
      if (!/^(Bearer|token) \S+/.test(String(req.headers.authorization ?? ''))) return json(res, 401, { message: 'Requires authentication' });
      const key = url.searchParams.get('key') ?? '';
      const wantRef = url.searchParams.get('ref');
      const listed = (e: CacheEntry) => ({ id: e.id, ref: e.ref, key: e.key, version: e.version, size_in_bytes: e.size, created_at: new Date(0).toISOString(), last_accessed_at: new Date(0).toISOString() });
      if (req.method === 'GET') {
        const page = Number(url.searchParams.get('page') ?? 1);
        const perPage = Number(url.searchParams.get('per_page') ?? 30);
        const all = entries.filter((e) => e.committed && e.key.startsWith(key) && (!wantRef || e.ref === wantRef)).sort((a, b) => b.seq - a.seq);
        return json(res, 200, { total_count: all.length, actions_caches: all.slice((page - 1) * perPage, page * perPage).map(listed) });
      }
      if (req.method === 'DELETE') {
        if (!api.restWrite) return json(res, 403, { message: 'Resource not accessible by integration' });
        if (!key) return json(res, 422, { message: 'key is required' });
        const gone = entries.filter((e) => e.key === key && (!wantRef || e.ref === wantRef));
        if (gone.length === 0) return json(res, 404, { message: 'Not Found' });
        for (const e of gone) entries.splice(entries.indexOf(e), 1);
        return json(res, 200, { total_count: gone.length, actions_caches: gone.map(listed) });
      }
    }
    // --- v2: Twirp ---
    if (req.method === 'POST' && path.startsWith(TWIRP)) {
      const method = path.slice(TWIRP.length);
      const input = JSON.parse((await body(req)).toString() || '{}') as Record<string, unknown>;
      if (method === 'CreateCacheEntry') {
        const entry = create(String(input.key), String(input.version), ref);
        if (!entry) return json(res, 200, { ok: false, message: 'cache entry already exists' });
        return json(res, 200, { ok: true, signed_upload_url: `${base}/blob/devstoreaccount1/cache/${entry.id}?sv=2020&sig=test` });
      }
      if (method === 'FinalizeCacheEntryUpload') {
        const entry = entries.find((e) => e.key === input.key && e.version === input.version && e.ref === ref && !e.committed);
        if (!entry) return json(res, 200, { ok: false, message: 'no such upload' });
        entry.committed = true;
        entry.size = Number(input.size_bytes);
        return json(res, 200, { ok: true, entry_id: String(entry.id) });
      }
      if (method === 'GetCacheEntryDownloadURL') {
        const entry = find(String(input.key), (input.restore_keys as string[] | undefined) ?? [], String(input.version), ref);
        if (!entry) return json(res, 200, { ok: false });
        return json(res, 200, { ok: true, signed_download_url: `${base}/download/${entry.id}?sig=test`, matched_key: entry.key });
      }
      return json(res, 404, { code: 'bad_route', msg: `no method ${method}` });
    }
    // --- Azure blob, as the BlockBlobClient sends it ---
    const blob = /^\/blob\/[^/]+\/[^/]+\/(\d+)$/.exec(path);
    if (blob && req.method === 'PUT') {
      const entry = byId(blob[1]);
      if (!entry) return json(res, 404, {});
      const comp = url.searchParams.get('comp');
      if (comp === 'block') {
        blocks.set(`${entry.id}/${url.searchParams.get('blockid')}`, await body(req));
      } else if (comp === 'blocklist') {
        const ids = [...(await body(req)).toString().matchAll(/<(?:Latest|Uncommitted|Committed)>([^<]+)<\//g)].map((m) => m[1]!);
        const parts = ids.map((id) => blocks.get(`${entry.id}/${id}`));
        if (parts.some((p) => !p)) return json(res, 400, { msg: 'unknown block' });
        await writeFile(entry.file, Buffer.concat(parts as Buffer[]));
        entry.upload = 'blocks';
      } else {
        await pipeline(req, createWriteStream(entry.file));
        entry.upload = 'single';
      }
      res.writeHead(201, { etag: `"${randomUUID()}"`, 'last-modified': new Date().toUTCString(), 'x-ms-request-id': randomUUID(), 'x-ms-version': '2020-10-02', 'content-length': 0 }).end();
      return;
    }
    const download = /^\/download\/(\d+)$/.exec(path);
    if (download && req.method === 'GET') {
      const entry = byId(download[1]);
      if (!entry?.committed) return json(res, 404, {});
      const bytes = await readFile(entry.file);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.length }).end(bytes);
      return;
    }
    // --- v1: REST ---
    const v1 = /^\/_apis\/artifactcache\/(.*)$/.exec(path);
    if (v1) {
      const resource = v1[1]!;
      if (req.method === 'GET' && resource === 'cache') {
        const [key = '', ...restoreKeys] = (url.searchParams.get('keys') ?? '').split(',');
        const entry = find(key, restoreKeys, url.searchParams.get('version') ?? '', ref);
        if (!entry) {
          res.writeHead(204).end();
          return;
        }
        return json(res, 200, { cacheKey: entry.key, scope: entry.ref, archiveLocation: `${base}/download/${entry.id}` });
      }
      if (req.method === 'POST' && resource === 'caches') {
        const input = JSON.parse((await body(req)).toString()) as { key: string; version: string };
        const entry = create(input.key, input.version, ref);
        if (!entry) return json(res, 409, { message: 'cache already exists' });
        await writeFile(entry.file, '');
        return json(res, 201, { cacheId: entry.id });
      }
      const chunk = /^caches\/(\d+)$/.exec(resource);
      const entry = chunk ? byId(chunk[1]) : undefined;
      if (entry && req.method === 'PATCH') {
        const range = /bytes (\d+)-(\d+)/.exec(String(req.headers['content-range']));
        if (!range) return json(res, 400, { message: 'no Content-Range' });
        const bytes = await body(req);
        const { open } = await import('node:fs/promises');
        const fh = await open(entry.file, 'r+');
        await fh.write(bytes, 0, bytes.length, Number(range[1]));
        await fh.close();
        entry.upload = 'chunks';
        res.writeHead(204).end();
        return;
      }
      if (entry && req.method === 'POST') {
        const input = JSON.parse((await body(req)).toString()) as { size: number };
        entry.size = input.size;
        entry.committed = true;
        res.writeHead(204).end();
        return;
      }
    }
    json(res, 404, { msg: `nothing at ${req.method} ${path}` });
  }

  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const api: CacheServer = {
    url: base,
    entries,
    requests,
    hung: 0,
    restWrite: true,
    env(protocol = 'v2', opts = {}) {
      const token = {
        ACTIONS_RUNTIME_TOKEN: opts.ref ? `${TOKEN};ref=${encodeURIComponent(opts.ref)}` : TOKEN,
        GITHUB_API_URL: base,
        ...(opts.ref ? { GITHUB_REF: opts.ref } : {}),
      };
      if (protocol === 'v1') return { ...token, GITHUB_SERVER_URL: 'https://ghes.example.internal', ACTIONS_CACHE_URL: `${base}/`, ACTIONS_CACHE_SERVICE_V2: '' };
      return { ...token, GITHUB_SERVER_URL: 'https://github.com', ACTIONS_RESULTS_URL: `${base}/`, ACTIONS_CACHE_SERVICE_V2: 'true' };
    },
    evict(key) {
      const gone = entries.filter((e) => e.key === key);
      for (const e of gone) entries.splice(entries.indexOf(e), 1);
      return gone.length;
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await rm(dir, { recursive: true, force: true });
    },
  };
  return api;
}

/**
 * For tests that call restoreStoreCache/saveStoreCache in their own process: the cache-call child those
 * start is `post.js` beside the running entry (process.argv[1]). This bundles one from src (just
 * runCacheCall, so it does not depend on dist/) into a temporary directory and points argv[1] there.
 */
export async function useCacheCallChild(): Promise<void> {
  const { build } = await import('esbuild');
  const { repoRoot } = await import('./action.js');
  const dir = await mkdtemp(join(tmpdir(), 'nia-cache-child-'));
  const entry = join(dir, 'entry.ts');
  await writeFile(entry, `import { runCacheCall } from ${JSON.stringify(join(repoRoot, 'src', 'nix', 'cache-call.ts'))};\nvoid runCacheCall();\n`);
  await build({ entryPoints: [entry], bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile: join(dir, 'post.js'), logLevel: 'silent', banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" } });
  process.argv[1] = join(dir, 'index.js');
}
