// The binary-cache input at unit level: which URLs it takes (s3:// above all, which Debian's Nix 2.8 here
// cannot reach), where an S3 object is, AWS Signature Version 4 against AWS's own example, the netrc,
// the front's forwarding and its failure mode against a loopback upstream, and what the action's `nix copy`
// to S3 is given: the AWS_* variables and the key as a 0600 file removed right after, nothing else.
import { chmod, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isSecretVariable, withoutSecrets } from '../../src/image/child-env.js';
import { parseInputs } from '../../src/inputs/index.js';
import { awsCredentials, netrcCredentials, parseNetrc, s3ObjectUrl, signS3, startCacheFront, upstreamOf, type CacheFront } from '../../src/nix/cache-http.js';
import { cacheUrlProblem, parseCacheUrl } from '../../src/nix/cache-url.js';
import { BINARY_CACHE_PRIORITY, binaryCacheLines, nixCopyEnv, nixCopyWithKey, s3CopyUrl, substitutedFrom } from '../../src/nix/remote-cache.js';
import { STORE_CACHE_PRIORITY } from '../../src/nix/binary-cache.js';

const reader = (values: Record<string, string>) => (name: string) => values[name] ?? '';
const PUB = `ci-1:${Buffer.alloc(32, 7).toString('base64')}`;

describe('the binary-cache input', () => {
  it.each([
    's3://my-nix-cache',
    's3://my-nix-cache?region=eu-west-1',
    's3://nix-cache?region=auto&endpoint=0123456789abcdef.r2.cloudflarestorage.com',
    's3://nix?endpoint=minio.internal:9000&scheme=http&compression=zstd',
    'https://cache.example.com',
    'https://cache.example.com/team/',
    'http://10.0.0.5:8080/nix',
    'file:///mnt/shared/nix-cache',
  ])('takes %s', (url) => {
    expect(cacheUrlProblem(url)).toBeUndefined();
    expect(parseInputs(reader({ attr: 'docker', 'binary-cache': url, 'binary-cache-public-key': PUB }), { GITHUB_REPOSITORY: 'o/r' }).binaryCache).toBe(url);
  });

  it.each([
    ['ssh://builder', /^input binary-cache: expected an s3:\/\/, https:\/\/, http:\/\/ or file:\/\/ Nix store URL$/],
    ['cache.example.com', /^input binary-cache: expected an s3:\/\//],
    ['https://user:hunter2@cache.example.com', /^input binary-cache: must not hold credentials \(user:password@\): HTTP credentials come from the runner's netrc file, S3 ones from its AWS_\* variables$/],
    ['s3://bucket?secret-key=/etc/nix/key', /^input binary-cache: takes no secret-key parameter: the signing key goes in binary-cache-key/],
    ['s3://bucket?trusted=1', /^input binary-cache: takes no trusted parameter: a path from it is taken only with a signature/],
    ['s3://bucket?priority=10', /^input binary-cache: takes no priority parameter/],
    ['s3://bucket?regoin=eu-west-1', /^input binary-cache: has the parameter regoin, which Nix's S3 store does not take here/],
    ['s3://bucket/prefix', /^input binary-cache: expected s3:\/\/<bucket>\?… without a path/],
    ['s3://Bad_Bucket', /^input binary-cache: expected s3:\/\/<bucket> with a valid bucket name$/],
    ['s3://bucket?endpoint=https://minio:9000', /^input binary-cache: endpoint= must be a host\[:port\]/],
    ['s3://bucket?scheme=ftp', /^input binary-cache: scheme= must be https or http$/],
    ['https://cache.example.com?priority=1', /^input binary-cache: an https:\/\/ cache takes no \?parameters$/],
    ['file://host/dir', /^input binary-cache: expected file:\/\/\/absolute\/directory$/],
    ['file:///', /^input binary-cache: expected file:\/\/\/absolute\/directory \(not \/ nor a path with whitespace\)$/],
  ])('refuses %s in one line naming the input', (url, message) => {
    let error: Error | undefined;
    try {
      parseInputs(reader({ attr: 'docker', 'binary-cache': url, 'binary-cache-public-key': PUB }), { GITHUB_REPOSITORY: 'o/r' });
    } catch (e) {
      error = e as Error;
    }
    expect(error?.name).toBe('InputError');
    expect(error?.message).toMatch(message);
    expect(error?.message).not.toContain('\n');
    expect(error?.message).not.toContain('hunter2');
  });

  it('needs a key to check what it takes: a remote cache is never trusted as it is', () => {
    expect(() => parseInputs(reader({ attr: 'docker', 'binary-cache': 's3://bucket' }), { GITHUB_REPOSITORY: 'o/r' })).toThrow(
      /^input binary-cache: needs binary-cache-public-key \(or binary-cache-key\): a cache that other jobs write is used only with signatures by a key you name, never trusted as it is$/,
    );
  });

  it('is a substituter after cache.nixos.org and the GitHub store cache, trusted through its keys only', () => {
    expect(BINARY_CACHE_PRIORITY).toBeGreaterThan(STORE_CACHE_PRIORITY);
    expect(binaryCacheLines('http://127.0.0.1:4242', [PUB])).toBe(`extra-substituters = http://127.0.0.1:4242?priority=${BINARY_CACHE_PRIORITY}\nextra-trusted-public-keys = ${PUB}\nfallback = true`);
    expect(binaryCacheLines('http://127.0.0.1:4242', [PUB])).not.toMatch(/trusted=/);
  });

  it('reads which paths came from it in the build log', () => {
    expect(substitutedFrom("copying path '/nix/store/abc-app' from 'http://127.0.0.1:4242'...", 'http://127.0.0.1:4242')).toBe('/nix/store/abc-app');
    expect(substitutedFrom("\x1b[1mcopying path '/nix/store/abc-app' from 'file:///cache'\x1b[0m", 'file:///cache')).toBe('/nix/store/abc-app');
    expect(substitutedFrom("copying path '/nix/store/abc-glibc' from 'https://cache.nixos.org'...", 'http://127.0.0.1:4242')).toBeUndefined();
  });
});

describe('S3', () => {
  const env = { AWS_REGION: 'eu-central-1' };

  it('puts an object where AWS and S3-compatible stores serve it', () => {
    expect(s3ObjectUrl(parseCacheUrl('s3://nix-cache?region=eu-west-1'), 'abc.narinfo', env).href).toBe('https://nix-cache.s3.eu-west-1.amazonaws.com/abc.narinfo');
    // The runner's region when the URL names none (aws-actions/configure-aws-credentials sets AWS_REGION).
    expect(s3ObjectUrl(parseCacheUrl('s3://nix-cache'), 'nar/x.nar.xz', env).href).toBe('https://nix-cache.s3.eu-central-1.amazonaws.com/nar/x.nar.xz');
    expect(s3ObjectUrl(parseCacheUrl('s3://nix-cache'), 'nix-cache-info', {}).href).toBe('https://nix-cache.s3.us-east-1.amazonaws.com/nix-cache-info');
    // A bucket name with dots (TLS), R2 and MinIO: path-style.
    expect(s3ObjectUrl(parseCacheUrl('s3://nix.example.com?region=eu-west-1'), 'a.narinfo', env).href).toBe('https://s3.eu-west-1.amazonaws.com/nix.example.com/a.narinfo');
    expect(s3ObjectUrl(parseCacheUrl('s3://nix?region=auto&endpoint=acct.r2.cloudflarestorage.com'), 'a.narinfo', env).href).toBe('https://acct.r2.cloudflarestorage.com/nix/a.narinfo');
    expect(s3ObjectUrl(parseCacheUrl('s3://nix?endpoint=minio:9000&scheme=http'), 'nar/b.nar', env).href).toBe('http://minio:9000/nix/nar/b.nar');
  });

  it("signs as AWS's Signature Version 4 example (GET Object) says", () => {
    const headers = signS3({
      method: 'GET',
      url: new URL('https://examplebucket.s3.amazonaws.com/test.txt'),
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' },
      date: new Date('2013-05-24T00:00:00Z'),
      headers: { Range: 'bytes=0-9' },
    });
    expect(headers.authorization).toBe(
      'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
    );
    expect(headers['x-amz-date']).toBe('20130524T000000Z');
  });

  it('takes the credentials aws-actions/configure-aws-credentials leaves, the session token signed too', () => {
    expect(awsCredentials({})).toBeUndefined();
    const creds = { AWS_ACCESS_KEY_ID: 'AKIA1', AWS_SECRET_ACCESS_KEY: 'sekrit', AWS_SESSION_TOKEN: 'sess' };
    const upstream = upstreamOf(parseCacheUrl('s3://nix-cache?region=eu-west-1'), creds);
    expect(upstream.credentialed).toBe(true);
    expect(upstream.secrets).toEqual(['sekrit', 'sess']);
    const { url, headers } = upstream.target('/abc.narinfo', 'GET');
    expect(url.href).toBe('https://nix-cache.s3.eu-west-1.amazonaws.com/abc.narinfo');
    expect(headers['x-amz-security-token']).toBe('sess');
    expect(headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIA1\/\d{8}\/eu-west-1\/s3\/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=[0-9a-f]{64}$/);
    // No credentials: unsigned requests (a bucket that allows anonymous reads).
    expect(upstreamOf(parseCacheUrl('s3://nix-cache'), {}).target('/x.narinfo', 'GET').headers).toEqual({});
  });

  it("writes with nix copy to the URL with the runner's region and the key file, keeping the user's parameters", () => {
    expect(s3CopyUrl(parseCacheUrl('s3://nix-cache?compression=zstd'), '/runner/tmp/nix-image-binary-cache-x/signing-key', env)).toBe(
      's3://nix-cache?compression=zstd&region=eu-central-1&secret-key=/runner/tmp/nix-image-binary-cache-x/signing-key',
    );
    expect(s3CopyUrl(parseCacheUrl('s3://nix?region=auto&endpoint=acct.r2.cloudflarestorage.com'), '/k', env)).toBe('s3://nix?region=auto&endpoint=acct.r2.cloudflarestorage.com&secret-key=/k');
  });
});

describe("the runner's AWS credentials", () => {
  const runner = {
    PATH: '/usr/bin',
    HOME: '/home/runner',
    AWS_ACCESS_KEY_ID: 'AKIA1',
    AWS_SECRET_ACCESS_KEY: 'sekrit',
    AWS_SESSION_TOKEN: 'sess',
    AWS_REGION: 'eu-west-1',
    'INPUT_BINARY-CACHE-KEY': 'k:secret',
    ACTIONS_RUNTIME_TOKEN: 'tok',
    NIX_CONFIG: 'access-tokens = github.com=ghp_x',
  };

  it('are kept from every Nix the action runs for the flake (evaluation, build) and from the stream script', () => {
    expect(isSecretVariable('AWS_SECRET_ACCESS_KEY')).toBe(true);
    expect(isSecretVariable('aws_session_token')).toBe(true);
    expect(Object.keys(withoutSecrets(runner)).sort()).toEqual(['HOME', 'PATH']);
  });

  it("go to the action's own nix copy to S3 only, without the inputs, the runner's tokens or the job's NIX_CONFIG", () => {
    expect(nixCopyEnv(runner)).toEqual({
      PATH: '/usr/bin',
      HOME: '/home/runner',
      NIX_CONFIG: 'access-tokens = github.com=ghp_x\nextra-experimental-features = nix-command flakes',
      AWS_ACCESS_KEY_ID: 'AKIA1',
      AWS_SECRET_ACCESS_KEY: 'sekrit',
      AWS_SESSION_TOKEN: 'sess',
      AWS_REGION: 'eu-west-1',
    });
  });
});

describe("the action's nix copy", () => {
  it('gets the key as a 0600 file under RUNNER_TEMP, named in the URL only, removed when Nix exits (also on failure)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nia-fake-nix-'));
    const record = join(dir, 'record');
    const nix = join(dir, 'nix');
    // A stand-in for nix that records what it was given: its arguments, its environment, and the key file
    // the URL names (mode and content), then fails or succeeds as told.
    await writeFile(
      nix,
      `#!/bin/sh\nfor a in "$@"; do echo "arg $a"; done > ${record}\nenv | sort | sed 's/^/env /' >> ${record}\nkey=$(echo "$3" | sed 's/.*secret-key=//')\necho "key $key $(stat -c %a "$key") $(cat "$key")" >> ${record}\n[ -n "$FAIL" ] && { echo "error: the bucket said no" >&2; exit 1; }\nexit 0\n`,
    );
    await chmod(nix, 0o755);
    const runnerTemp = await mkdtemp(join(tmpdir(), 'nia-runner-temp-'));
    const previous = process.env.RUNNER_TEMP;
    process.env.RUNNER_TEMP = runnerTemp;
    try {
      const secret = `ci-1:${Buffer.alloc(64, 9).toString('base64')}`;
      const env = nixCopyEnv({ PATH: process.env.PATH, AWS_ACCESS_KEY_ID: 'AKIA1', AWS_SECRET_ACCESS_KEY: 'sekrit', 'INPUT_BINARY-CACHE-KEY': secret });
      await nixCopyWithKey(nix, (file) => s3CopyUrl(parseCacheUrl('s3://nix-cache?region=eu-west-1'), file), secret, ['/nix/store/abc-app', '/nix/store/def-base'], env);
      const lines = (await readFile(record, 'utf8')).split('\n');
      expect(lines.filter((l) => l.startsWith('arg '))).toEqual([
        'arg copy',
        'arg --to',
        expect.stringMatching(new RegExp(`^arg s3://nix-cache\\?region=eu-west-1&secret-key=${runnerTemp}/nix-image-binary-cache-\\w+/signing-key$`)),
        'arg /nix/store/abc-app',
        'arg /nix/store/def-base',
      ]);
      const keyLine = lines.find((l) => l.startsWith('key '))!.split(' ');
      expect(keyLine.slice(2)).toEqual(['600', secret]);
      expect(existsSync(keyLine[1]!)).toBe(false); // removed once Nix exited
      expect(lines).toContain('env AWS_SECRET_ACCESS_KEY=sekrit');
      expect(lines.filter((l) => l.startsWith('env ') && l.includes(secret))).toEqual([]);
      expect(lines.filter((l) => /^env INPUT_/.test(l))).toEqual([]);

      await expect(nixCopyWithKey(nix, (file) => `file:///tmp/x?secret-key=${file}`, secret, ['/nix/store/abc-app'], { ...env, FAIL: '1' })).rejects.toThrow(/^nix copy failed \(exit 1\): error: the bucket said no$/);
      const failedKey = (await readFile(record, 'utf8')).split('\n').find((l) => l.startsWith('key '))!.split(' ')[1]!;
      expect(existsSync(failedKey)).toBe(false);
    } finally {
      if (previous === undefined) delete process.env.RUNNER_TEMP;
      else process.env.RUNNER_TEMP = previous;
    }
  });
});

describe('HTTP credentials from the netrc', () => {
  it('parses machine, default and macdef entries as curl does', () => {
    expect(parseNetrc('machine a.example login u password p\n# comment\nmachine b.example\n  password tok\nmacdef init\ncd /\n\ndefault login anon password x')).toEqual([
      { machine: 'a.example', login: 'u', password: 'p' },
      { machine: 'b.example', password: 'tok' },
      { login: 'anon', password: 'x' },
    ]);
  });

  it("finds the host's entry in $NETRC, else ~/.netrc", async () => {
    const home = await mkdtemp(join(tmpdir(), 'nia-netrc-'));
    await writeFile(join(home, '.netrc'), 'machine cache.example.com login ci password s3cret\n');
    expect(netrcCredentials('cache.example.com', { HOME: home })).toEqual({ login: 'ci', password: 's3cret' });
    expect(netrcCredentials('other.example.com', { HOME: home })).toBeUndefined();
    await writeFile(join(home, 'alt'), 'machine cache.example.com password tok\n');
    expect(netrcCredentials('cache.example.com', { HOME: home, NETRC: join(home, 'alt') })).toEqual({ login: '', password: 'tok' });
    const upstream = upstreamOf(parseCacheUrl('https://cache.example.com/team'), { HOME: home });
    expect(upstream.target('/x.narinfo', 'GET')).toEqual({ url: new URL('https://cache.example.com/team/x.narinfo'), headers: { authorization: `Basic ${Buffer.from('ci:s3cret').toString('base64')}` } });
    expect(upstream.secrets).toContain('s3cret');
  });
});

describe('the front Nix reads a cache through', () => {
  let front: CacheFront | undefined;
  let stop: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await front?.close();
    await stop?.();
    front = undefined;
  });

  async function upstreamServer(answer: (req: IncomingMessage) => { status: number; body?: string }): Promise<{ port: number; seen: { path: string; authorization?: string }[] }> {
    const seen: { path: string; authorization?: string }[] = [];
    const server = createServer((req, res) => {
      seen.push({ path: req.url ?? '', ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) });
      const a = answer(req);
      res.writeHead(a.status).end(a.body ?? '');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    stop = () => new Promise<void>((r) => server.close(() => r()));
    return { port: (server.address() as AddressInfo).port, seen };
  }

  it('forwards to an S3-compatible endpoint (path-style), signed, and serves its own nix-cache-info', async () => {
    const up = await upstreamServer((req) => (req.url === '/nix/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.narinfo' ? { status: 200, body: 'StorePath: /nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x\n' } : { status: 404 }));
    const cache = parseCacheUrl(`s3://nix?endpoint=127.0.0.1:${up.port}&scheme=http&region=auto`);
    const failures: string[] = [];
    front = await startCacheFront(upstreamOf(cache, { AWS_ACCESS_KEY_ID: 'AKIA1', AWS_SECRET_ACCESS_KEY: 'sekrit' }), 'StoreDir: /nix/store\nPriority: 1010\n', (r) => failures.push(r));
    expect(await (await fetch(`${front.url}/nix-cache-info`)).text()).toBe('StoreDir: /nix/store\nPriority: 1010\n');
    expect(await (await fetch(`${front.url}/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.narinfo`)).text()).toMatch(/^StorePath: /);
    expect((await fetch(`${front.url}/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.narinfo`)).status).toBe(404);
    expect((await fetch(`${front.url}/etc/passwd`)).status).toBe(404); // not a binary cache file: never forwarded
    expect((await fetch(`${front.url}/x.narinfo`, { method: 'PUT', body: 'x' })).status).toBe(405);
    // Only this job's Nix knows the front's token; an escaped path never reaches another file of the host.
    const origin = new URL(front.url).origin;
    expect((await fetch(`${origin}/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.narinfo`)).status).toBe(404);
    expect((await fetch(`${front.url}/log/..%2F..%2Fprivate%2Fsecret.txt`)).status).toBe(404);
    expect((await fetch(`${front.url}/log/${'a'.repeat(32)}-x.drv%2F..`)).status).toBe(404);
    expect(up.seen.map((s) => s.path)).toEqual(['/nix/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.narinfo', '/nix/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.narinfo']);
    for (const s of up.seen) expect(s.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIA1\/\d{8}\/auto\/s3\/aws4_request, /);
    expect(failures).toEqual([]);
  });

  it('ends the upstream download when Nix drops its own, and stays in use (a dropped download is not the cache failing)', async () => {
    let upstreamClosed = false;
    const server = createServer((req, res) => {
      // A NAR that comes slowly: 64 KiB every 50 ms.
      res.writeHead(200, { 'content-type': 'application/x-nix-nar' });
      const timer = setInterval(() => res.write(Buffer.alloc(64 * 1024)), 50);
      res.on('close', () => {
        clearInterval(timer);
        upstreamClosed = true;
      });
      if (req.url?.endsWith('.narinfo')) {
        clearInterval(timer);
        res.end('StorePath: /nix/store/x\n');
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    stop = () => new Promise<void>((r) => server.close(() => r()));
    const failures: string[] = [];
    front = await startCacheFront(upstreamOf(parseCacheUrl(`http://127.0.0.1:${(server.address() as AddressInfo).port}/cache`), {}), 'StoreDir: /nix/store\n', (r) => failures.push(r));
    const drop = new AbortController();
    const nar = await fetch(`${front.url}/nar/${'a'.repeat(52)}.nar`, { signal: drop.signal });
    const reader = nar.body!.getReader();
    await reader.read(); // one piece, then Nix goes away
    drop.abort();
    for (let i = 0; i < 60 && !upstreamClosed; i++) await new Promise((r) => setTimeout(r, 50));
    expect(upstreamClosed).toBe(true); // not left paused until the stall timeout turns it into a failure
    expect(failures).toEqual([]);
    expect(front.failure()).toBeUndefined();
    expect((await fetch(`${front.url}/${'b'.repeat(32)}.narinfo`)).status).toBe(200);
  });

  it('after the first failure answers 404 to everything at once, and says so once', async () => {
    const up = await upstreamServer(() => ({ status: 503 }));
    const failures: string[] = [];
    front = await startCacheFront(upstreamOf(parseCacheUrl(`http://127.0.0.1:${up.port}/cache`), {}), 'StoreDir: /nix/store\n', (r) => failures.push(r));
    for (const h of ['a', 'b', 'c']) expect((await fetch(`${front.url}/${h.repeat(32)}.narinfo`)).status).toBe(404);
    expect(up.seen.map((s) => s.path)).toEqual([`/cache/${'a'.repeat(32)}.narinfo`]);
    expect(failures).toEqual([`/${'a'.repeat(32)}.narinfo answered 503`]);
    expect(front.failure()).toBe(failures[0]);
  });
});
