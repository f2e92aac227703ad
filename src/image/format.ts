// Recognises what a Nix build output holds: a docker-archive (plain, gzip or zstd) or a
// streamLayeredImage script. Anything else is a clear error naming the path and what was found.
import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageFormat, ImageSource } from './types.js';

export class NotAnImageError extends Error {
  override name = 'NotAnImageError';
}

const GZIP = Buffer.from([0x1f, 0x8b]);
const ZSTD = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

async function head(path: string, n: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** The format of one file by its first bytes, or a description of what it is instead. */
export async function sniffFile(path: string): Promise<{ format?: ImageFormat; found: string }> {
  const info = await stat(path);
  const bytes = await head(path, 512);
  if (bytes.subarray(0, 2).equals(GZIP)) return { format: 'docker-archive+gzip', found: 'gzip data' };
  if (bytes.subarray(0, 4).equals(ZSTD)) return { format: 'docker-archive+zstd', found: 'zstd data' };
  if (bytes.length >= 262 && bytes.subarray(257, 262).toString('latin1') === 'ustar') {
    return { format: 'docker-archive', found: 'a tar archive' };
  }
  if (bytes.subarray(0, 2).toString('latin1') === '#!') {
    if (info.mode & 0o111) return { format: 'stream', found: 'an executable script' };
    return { found: 'a script that is not executable' };
  }
  if (bytes.subarray(0, 4).toString('latin1') === '\x7fELF') return { found: 'an ELF executable' };
  return { found: info.size === 0 ? 'an empty file' : `a ${info.size}-byte file of unknown type` };
}

const ARCHIVE_NAME = /\.(tar|tar\.gz|tgz|tar\.zst)$/;

/**
 * Where the image is in a build output. The output is the archive or the stream script itself (what
 * dockerTools makes), or a directory holding exactly one archive (what some wrappers make).
 */
export async function detectSource(storePath: string): Promise<ImageSource> {
  const info = await stat(storePath).catch(() => undefined);
  if (!info) throw new NotAnImageError(`${storePath} is not a container image: the path does not exist`);
  let path = storePath;
  if (info.isDirectory()) {
    const entries = await readdir(storePath);
    const archives = entries.filter((e) => ARCHIVE_NAME.test(e));
    if (archives.length !== 1) {
      const listing = entries.slice(0, 5).join(', ') + (entries.length > 5 ? ', …' : '');
      throw new NotAnImageError(
        `${storePath} is not a container image: expected a docker-archive (.tar, .tar.gz, .tar.zst) or a ` +
          `streamLayeredImage script, found a directory with ${entries.length ? listing : 'nothing in it'}`,
      );
    }
    path = join(storePath, archives[0]!);
  }
  const { format, found } = await sniffFile(path);
  if (!format) {
    throw new NotAnImageError(
      `${path} is not a container image: expected a docker-archive (.tar, .tar.gz, .tar.zst) or a ` +
        `streamLayeredImage script, found ${found}`,
    );
  }
  return { format, path };
}
