// Counts the action's buffers toward V8's heap limits, as one budget with the JS heap, instead of
// against V8's separate trigger for memory outside the heap. A push moves every layer through 1 MiB
// buffers (blocks read, deflated, stored, spooled, sent): with the separate trigger, V8 ran a full
// mark-compact for every few dozen MiB of them (94 for a 512 MiB push), about 1.3 s of the main thread's
// time and 15% of the process's CPU. With the one budget it runs a few (17), for about 100 MiB more
// peak RSS, which no longer grows with the image (it stays near 250 MiB for a 2 GiB one; see
// docs/benchmarks.md). Imported first by main.ts and post.ts, next to threadpool.ts.
//
// The flag is set on V8 13 only, the V8 of Node 24 (the runtime action.yml names): a V8 without it
// prints an "unrecognized flag" error, so a later runtime is checked for it before this is widened.
import { setFlagsFromString } from 'node:v8';

export const ONE_BUDGET_FLAG = '--external-memory-accounted-in-global-limit';

/** Whether this V8 is one the flag is known on (13, Node 24's). */
export function hasOneBudget(v8Version: string = process.versions.v8): boolean {
  return Number(v8Version.split('.')[0]) === 13;
}

if (hasOneBudget()) setFlagsFromString(ONE_BUDGET_FLAG);
