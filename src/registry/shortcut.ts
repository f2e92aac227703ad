// The registry as the image's binary cache: when every target repository already holds a manifest made
// from the same derivation with the same settings (its producer annotations), the image is only put under
// the tags; nothing is restored, built or uploaded.
import type { PushResult } from './push.js';
import { findEverywhere, retagEverywhere, type PushTarget } from './targets.js';
import type { Logger } from './types.js';
import type { Wanted } from './existing.js';

export type Shortcut = { results: PushResult[]; foundUnder: string; reason: string } | { results?: undefined; reason: string };

/** Looks for the image in every target and, when all hold it, re-tags it there. */
export async function retagIfPushed(targets: PushTarget[], producer: Wanted, logger: Logger, started = Date.now()): Promise<Shortcut> {
  if (targets.length === 0) return { reason: 'nothing is pushed' };
  const found = await findEverywhere(targets, producer, logger);
  if (!found.existing) return { reason: found.reason };
  const results = await retagEverywhere(targets, found.existing, started);
  return { results, foundUnder: found.existing[0]!.foundUnder, reason: found.reason };
}
