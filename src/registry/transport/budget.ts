// The retry budget of one client (one push): every request may retry on its own, but once the registry has
// answered nothing but retryable failures for `ms` (a success anywhere starts the count again), no request
// waits for another try. A registry that refuses everything thus fails the push within the budget and one
// request, while a registry that is merely busy (429 now and then, a burst of 503s) keeps being retried.
// It also counts the retries, by cause, for the report.

export interface RetryStats {
  /** Requests sent again (and upload sessions opened again) after a failure. */
  total: number;
  /** By cause: the HTTP status ("429", "503"), "connection" (dropped or reset) or "stall" (no bytes moved). */
  causes: Record<string, number>;
}

export class RetryBudget {
  private failingSince: number | undefined;
  private readonly counts: RetryStats = { total: 0, causes: {} };

  constructor(
    /** How long the registry may answer nothing but failures before retries stop. */
    readonly ms: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** A request got an answer it wanted: the registry is working, the count starts again. */
  progress(): void {
    this.failingSince = undefined;
  }

  /** After a retryable failure: whether waiting `waitMs` and trying again stays within the budget. */
  allows(waitMs: number): boolean {
    const now = this.now();
    this.failingSince ??= now;
    return now + waitMs - this.failingSince <= this.ms;
  }

  count(cause: string): void {
    this.counts.total++;
    this.counts.causes[cause] = (this.counts.causes[cause] ?? 0) + 1;
  }

  /** A copy of the counts so far. */
  stats(): RetryStats {
    return { total: this.counts.total, causes: { ...this.counts.causes } };
  }
}
