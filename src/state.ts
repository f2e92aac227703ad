// Carries what the post step needs from the main step (like docker/build-push-action's state-helper.ts).
// The runner hands main's core.saveState values to post as STATE_* variables.
import * as core from '@actions/core';

export interface PostState {
  /** Set once main has started, so post knows it is not a stray run. */
  started: boolean;
  storePath?: string;
  drvPath?: string;
  /** JSON-serialisable state of the store cache (nix/cache.ts), absent when the cache is off. */
  cache?: unknown;
}

const KEY = 'nix-image-action';

export function savePostState(state: PostState): void {
  core.saveState(KEY, JSON.stringify(state));
}

export function readPostState(): PostState | undefined {
  const raw = core.getState(KEY);
  if (raw === '') return undefined;
  try {
    return JSON.parse(raw) as PostState;
  } catch {
    return undefined;
  }
}
