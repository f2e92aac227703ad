// Logging shared by main and post: the registry and push modules log through this small interface.
import * as core from '@actions/core';
import type { Logger } from './registry/types.js';

export function actionLogger(): Logger {
  return { debug: core.debug, info: core.info, warning: (m) => core.warning(m) };
}

/** One line for core.setFailed: the error's own message, never a stack or a multi-line dump. */
export function errorLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n').map((l) => l.trim()).filter(Boolean).join(' — ');
}
