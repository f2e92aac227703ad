// Pure pieces of the registry's reliability: the retry budget, per-request retries with it, token
// renewal times, and reuse-tags references (tag, or repository:tag of the same registry).
import { describe, expect, it } from 'vitest';
import { parseImageName, parseReuseTags, tagsOf } from '../../src/registry/reference.js';
import { RetryBudget } from '../../src/registry/transport/budget.js';
import { DEFAULT_TOKEN_SECONDS, type Token } from '../../src/registry/transport/bearer.js';
import { NetworkError, RegistryError, StallError } from '../../src/registry/transport/error.js';
import { defaultRetry, retryCause, withRetry } from '../../src/registry/transport/retry.js';
import { TokenHolder, refreshAt } from '../../src/registry/transport/token.js';

describe('RetryBudget', () => {
  it('allows retries until the registry has answered nothing but failures for its length; a success starts it again', () => {
    let now = 0;
    const budget = new RetryBudget(1000, () => now);
    expect(budget.allows(200)).toBe(true); // failing since 0
    now = 700;
    expect(budget.allows(300)).toBe(true); // 1000: at the edge
    expect(budget.allows(301)).toBe(false);
    now = 900;
    budget.progress();
    expect(budget.allows(900)).toBe(true); // failing since 900 again
    now = 1900;
    expect(budget.allows(1)).toBe(false);
  });

  it('counts retries by cause', () => {
    const budget = new RetryBudget(1000);
    budget.count('429');
    budget.count('429');
    budget.count('connection');
    expect(budget.stats()).toEqual({ total: 3, causes: { '429': 2, connection: 1 } });
    expect(retryCause(new StallError('x'))).toBe('stall');
    expect(retryCause(new NetworkError('x'))).toBe('connection');
    expect(retryCause(new RegistryError('x', 503))).toBe('503');
  });

  it('keeps the documented defaults: 8 tries a request, 2 minutes of failures a push', () => {
    expect(defaultRetry).toEqual({ attempts: 8, baseMs: 500, maxMs: 30_000, budgetMs: 120_000 });
  });
});

describe('withRetry with a budget', () => {
  const policy = { attempts: 100, baseMs: 5, maxMs: 10 };

  it('stops when the budget is spent, saying so in the same line', async () => {
    const budget = new RetryBudget(60);
    let tries = 0;
    const run = withRetry(
      'HEAD blob x',
      async () => {
        tries++;
        throw new RegistryError('registry r answered 503 Service Unavailable to HEAD blob x', 503);
      },
      policy,
      undefined,
      undefined,
      { budget },
    );
    await expect(run).rejects.toThrow(/^registry r answered 503 Service Unavailable to HEAD blob x \(after \d+ tries; retrying would pass the retry budget of 0\.1 s\)$/);
    expect(tries).toBeGreaterThan(2);
    expect(budget.stats().total).toBe(tries - 1);
    expect(budget.stats().causes).toEqual({ '503': tries - 1 });
  });

  it('retries only what the predicate allows (a PATCH is not resent after its connection dropped)', async () => {
    let tries = 0;
    const run = withRetry(
      'PATCH blob x',
      async () => {
        tries++;
        throw new NetworkError('lost the connection');
      },
      policy,
      undefined,
      undefined,
      { retryable: (e) => !(e instanceof NetworkError) },
    );
    await expect(run).rejects.toThrow(/^lost the connection$/);
    expect(tries).toBe(1);
  });

  it('a success between failures keeps the budget from running out', async () => {
    // Six rounds of two failures, 300 ms in all; each streak of failures well under the 100 ms budget.
    const budget = new RetryBudget(100);
    for (let round = 0; round < 6; round++) {
      let tries = 0;
      await withRetry(
        'GET x',
        async () => {
          if (tries++ < 2) {
            await new Promise((r) => setTimeout(r, 15));
            throw new RegistryError('busy', 429);
          }
          return 'ok';
        },
        policy,
        undefined,
        undefined,
        { budget },
      );
    }
    expect(budget.stats().total).toBe(12);
  });
});

describe('bearer token renewal', () => {
  const token = (expiresInS: number, receivedAt = 0, value = 't'): Token => ({ value, expiresInS, receivedAt });

  it('renews a third of the lifetime early, at most 30 s early; 60 s when the answer gives no expires_in', () => {
    expect(DEFAULT_TOKEN_SECONDS).toBe(60);
    expect(refreshAt(token(60))).toBe(40_000);
    expect(refreshAt(token(300))).toBe(270_000);
    expect(refreshAt(token(3, 1000))).toBe(3000);
  });

  it('fetches again once due, shares one fetch between concurrent requests, and drops a refused token', async () => {
    let now = 0;
    let fetches = 0;
    const seen: string[] = [];
    const holder = new TokenHolder(
      async () => {
        fetches++;
        await new Promise((r) => setTimeout(r, 5));
        return token(3, now, `t${fetches}`);
      },
      (t) => seen.push(t.value),
      () => now,
    );
    expect(await Promise.all([holder.get(), holder.get(), holder.get()])).toEqual(['t1', 't1', 't1']);
    now = 1999;
    expect(await holder.get()).toBe('t1');
    now = 2000;
    expect(await holder.get()).toBe('t2');
    holder.invalidate('t1'); // an old token refused: the one held stays
    expect(await holder.get()).toBe('t2');
    holder.invalidate('t2');
    expect(await holder.get()).toBe('t3');
    expect(seen).toEqual(['t1', 't2', 't3']);
    expect(holder.fetched).toBe(3);
  });
});

describe('parseReuseTags', () => {
  const target = parseImageName('ghcr.io', 'mono/app');

  it('takes tags of the target repository and repository:tag of others in the same registry', () => {
    expect(parseReuseTags(['latest', 'mono/base:latest', 'mono/base:v1.2', 'mono/app:main', 'latest'], target)).toEqual([
      { repository: 'mono/app', tag: 'latest' },
      { repository: 'mono/base', tag: 'latest' },
      { repository: 'mono/base', tag: 'v1.2' },
      { repository: 'mono/app', tag: 'main' },
    ]);
    expect(parseReuseTags(['base:latest'], target)).toEqual([{ repository: 'base', tag: 'latest' }]);
    expect(parseReuseTags(['nginx:latest'], parseImageName('docker.io', 'me/app'))).toEqual([{ repository: 'library/nginx', tag: 'latest' }]);
    expect(tagsOf(parseReuseTags(['latest', 'mono/base:latest', 'main'], target), 'mono/app')).toEqual(['latest', 'main']);
  });

  it.each([
    ['bad tag!', /^input reuse-tags: expected tags of letters, digits, _ \. - \(not starting with \. or -\), or repository:tag, got "bad tag!"$/],
    ['.hidden', /^input reuse-tags: expected tags of /],
    ['mono/base', /^input reuse-tags: expected repository:tag for another repository \(the tag is missing\), got "mono\/base"$/],
    ['Mono/Base:latest', /^input reuse-tags: expected repository:tag with a lower-case repository path .*\(bad part "Mono"\)$/],
    ['ghcr.io/mono/base:latest', /^input reuse-tags: expected a repository of the same registry without its host .*"ghcr\.io\/mono\/base:latest"$/],
    ['localhost:5000/x:y', /^input reuse-tags: expected a repository of the same registry without its host/],
    ['mono/base@sha256:abc', /^input reuse-tags: expected a tag or repository:tag, not a digest/],
    ['mono/base:', /^input reuse-tags: expected tags of /],
    [`x:${'a'.repeat(129)}`, /^input reuse-tags: a tag has at most 128 characters/],
  ])('refuses %s in one line naming the input', (value, error) => {
    expect(() => parseReuseTags([value], target)).toThrow(error);
  });
});
