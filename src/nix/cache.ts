// The Nix store cache. Not active yet: restore reports a miss and save does nothing.
import type { NixSetup } from './install.js';

export interface RestoreOptions {
  enabled: boolean;
  keyPrefix?: string;
  attr: string;
  flake: string;
  maxSize: number;
  nix: string;
  env: NixSetup['env'];
}

export interface RestoreResult {
  hit: 'true' | 'partial' | 'false';
  restored?: { paths: number; bytes: number; seconds: number; key?: string };
  note?: string;
  env: Record<string, string>;
  state?: unknown;
}

export async function restoreStoreCache(opts: RestoreOptions): Promise<RestoreResult> {
  return { hit: 'false', note: opts.enabled ? 'the store cache is not active yet' : 'cache: false', env: {} };
}

export async function saveStoreCache(_state: unknown, _built: { storePath: string; drvPath: string }): Promise<void> {
  // nothing to save until the store cache is active
}
