// A cancelled job: the runner sends SIGINT, then SIGTERM, before it kills the step. The main step stops
// at once: what it wrote under RUNNER_TEMP (compressed layers among them) is removed there and then, and
// the post step removes whatever was recorded, should the step be killed before that ends. Nothing is
// tagged after a signal: the process exits.
import * as core from '@actions/core';
import { rmSync } from 'node:fs';

export function stopOnCancel(dirs: () => string[]): void {
  const stop = (signal: NodeJS.Signals): void => {
    for (const dir of dirs()) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // the post step removes it (it was recorded)
      }
    }
    core.setFailed(`the step was cancelled (${signal}): it stopped where it was, and nothing more was pushed or tagged`);
    process.exit(1);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
