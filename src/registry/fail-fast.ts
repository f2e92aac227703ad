// Several tasks as one: the first failure aborts the others (through `signal`) and is the one reported.
// The push runs its layers so, and a copy to a later registry its blobs.

/** Runs tasks; the first failure aborts the rest (through `signal`) and is the one reported. */
export class FailFast {
  readonly controller = new AbortController();
  private first?: unknown;
  private readonly tasks: Promise<unknown>[] = [];
  /** Rejects with the first failure, the moment it happens. */
  readonly failed: Promise<never>;
  private rejectFailed!: (error: unknown) => void;

  constructor() {
    this.failed = new Promise<never>((_, reject) => (this.rejectFailed = reject));
    this.failed.catch(() => undefined);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  fail(error: unknown): void {
    if (this.first !== undefined) return;
    this.first = error;
    this.controller.abort(error);
    this.rejectFailed(error);
  }

  /** Throws the first failure, if any. */
  check(): void {
    if (this.first !== undefined) throw this.first;
  }

  track<T>(task: Promise<T>): Promise<T> {
    task.catch((e: unknown) => this.fail(e));
    this.tasks.push(task);
    return task;
  }

  async settle(): Promise<void> {
    await Promise.allSettled(this.tasks);
    this.check();
  }
}
