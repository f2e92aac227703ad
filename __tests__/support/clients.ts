// The independent clients' state, beside what support/registry.ts does with skopeo: podman, the second
// client (`podman pull` into a throwaway vfs store checks every layer's diff id against the image config
// as it unpacks it, the way a container runtime would), and skopeo's blob-info cache, emptied to play a
// fresh runner.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Pulls `ref` (host:port/repo:tag or @digest) over plain HTTP or unverified TLS; returns the image id
 *  podman reports (the config digest, without "sha256:"). Throws with podman's own message on failure. */
export async function podmanPull(ref: string, opts: { creds?: string } = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'nia-podman-'));
  try {
    const args = [
      '--root', join(dir, 'root'),
      '--runroot', join(dir, 'run'),
      '--storage-driver', 'vfs',
      'pull', '--quiet', '--tls-verify=false',
      ...(opts.creds ? ['--creds', opts.creds] : []),
      `docker://${ref}`,
    ];
    const { stdout } = await run('podman', args, { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
    return stdout.trim().split('\n').pop() ?? '';
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** Empties skopeo's blob-info cache (root's and the user's), as a new runner has it. */
export async function emptySkopeoBlobCache(): Promise<void> {
  for (const file of [
    '/var/lib/containers/cache/blob-info-cache-v1.boltdb',
    join(process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'containers', 'cache', 'blob-info-cache-v1.boltdb'),
  ]) {
    await rm(file, { force: true });
  }
}
