// Holding a bearer token: it is used until shortly before it expires (a third of its life early, at
// most 30 s), then fetched again before the next request goes out, so a long push never sends an expired
// token and never waits for a 401 to learn it. Requests arriving while a token is being fetched share that
// fetch. A 401 anyway (a token revoked, a scope it lacks) makes the client drop it and fetch another.
import { abortable } from './abort.js';
import type { Token } from './bearer.js';

/** When to fetch the next token: a third of the lifetime before expiry, at most 30 s before. */
export function refreshAt(token: Token): number {
  const life = token.expiresInS * 1000;
  return token.receivedAt + life - Math.min(30_000, life / 3);
}

export class TokenHolder {
  private token: Token | undefined;
  private pending: Promise<Token> | undefined;
  /** Tokens fetched so far. */
  fetched = 0;

  constructor(
    private readonly fetch: () => Promise<Token>,
    private readonly onToken: (token: Token) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {}

  /** The token to send now: the one held, or a fresh one when it is due. */
  async get(signal?: AbortSignal): Promise<string> {
    const held = this.token;
    if (held && this.now() < refreshAt(held)) return held.value;
    return (await this.refresh(signal)).value;
  }

  /** Fetches a token (joining a fetch already under way). */
  refresh(signal?: AbortSignal): Promise<Token> {
    this.pending ??= this.fetch().then(
      (token) => {
        this.pending = undefined;
        this.token = token;
        this.fetched++;
        this.onToken(token);
        return token;
      },
      (error: unknown) => {
        this.pending = undefined;
        throw error;
      },
    );
    return abortable(this.pending, signal, 'fetching a registry token');
  }

  /** Forget the token held (refused by the registry, or its scopes changed): the next request fetches one. */
  invalidate(value?: string): void {
    if (value === undefined || this.token?.value === value) this.token = undefined;
  }
}
