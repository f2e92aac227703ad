// Carries what the post step needs from the main step (like docker/build-push-action's state-helper.ts).
// The runner hands main's core.saveState values to post as STATE_* variables. Files the main step
// writes under RUNNER_TEMP are recorded under a key of their own the moment they are made, so the post
// step removes them even when main failed before saving anything else.
import * as core from '@actions/core';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PostState {
  /** Set once main has started, so post knows it is not a stray run. */
  started: boolean;
  storePath?: string;
  drvPath?: string;
  /** What import from derivation realised while evaluating (saved with the build's closure). */
  evaluated?: string[];
  /** JSON-serialisable state of the store cache (nix/cache.ts), absent when the cache is off. */
  cache?: unknown;
  /** State of the binary-cache input (nix/remote-cache.ts): its URL and keys, never a credential. */
  binaryCache?: unknown;
  /** Files and directories main wrote under RUNNER_TEMP (recordTempFile), removed first by post. */
  tempFiles?: string[];
}

const KEY = 'nix-image-action';
const TEMP_KEY = 'nix-image-action-temp';

export function savePostState(state: PostState): void {
  // tempFiles live under their own key (recordTempFile); JSON drops the undefined.
  core.saveState(KEY, JSON.stringify({ ...state, tempFiles: undefined }));
}

export function readPostState(): PostState | undefined {
  const raw = core.getState(KEY);
  if (raw === '') return undefined;
  try {
    return { ...(JSON.parse(raw) as PostState), tempFiles: readTempFiles() };
  } catch {
    return undefined;
  }
}

const recorded: string[] = [];

/** Records a path for the post step to remove; call it before the path is written. */
export function recordTempFile(path: string): void {
  if (recorded.includes(path)) return;
  recorded.push(path);
  core.saveState(TEMP_KEY, JSON.stringify(recorded));
}

/** The paths recordTempFile recorded in the main step (post step). */
export function readTempFiles(): string[] {
  const raw = core.getState(TEMP_KEY);
  if (raw === '') return [];
  try {
    const parsed = JSON.parse(raw) as unknown;
    return Array.isArray(parsed) ? parsed.filter((p): p is string => typeof p === 'string' && p !== '') : [];
  } catch {
    return [];
  }
}

/** A directory of this step's own under RUNNER_TEMP (the system's temp dir elsewhere), recorded for the
 *  post step before anything is written into it. */
export function stepTempDir(prefix = 'nix-image-action-'): string {
  const parent = process.env.RUNNER_TEMP || tmpdir();
  const dir = join(parent, `${prefix}${randomBytes(6).toString('hex')}`);
  recordTempFile(dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}
