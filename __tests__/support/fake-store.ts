// A store tree made by a test outside /nix/store: path names shaped as Nix's, modes as the store keeps
// them. For layer tests that compare our tars with Python's tarfile over real files.
import { createHash } from 'node:crypto';
import { chmod, lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** `<store>/<32 characters of Nix's base32 alphabet>-<name>`, from the name: reruns make the same trees. */
export function fakeStorePath(store: string, name: string): string {
  const alphabet = '0123456789abcdfghijklmnpqrsvwxyz';
  const h = createHash('sha256').update(name).digest();
  let hash = '';
  for (let i = 0; i < 32; i++) hash += alphabet[h[i]! % 32];
  return join(store, `${hash}-${name}`);
}

const child = (dir: string | Buffer, name: Buffer): Buffer => Buffer.concat([Buffer.from(dir), Buffer.from('/'), name]);

/** Gives a tree the store's modes: directories 0555, files 0444, or 0555 when executable; symlinks as they
 *  are. Paths as bytes, so names that are not UTF-8 are walked too. */
export async function sealStore(path: string | Buffer): Promise<void> {
  const st = await lstat(path);
  if (st.isSymbolicLink()) return;
  if (st.isDirectory()) {
    for (const c of await readdir(path, { encoding: 'buffer' })) await sealStore(child(path, c));
    await chmod(path, 0o555);
  } else await chmod(path, st.mode & 0o111 ? 0o555 : 0o444);
}

/** Makes a sealed tree writable again, so it can be removed. */
export async function unsealStore(path: string | Buffer): Promise<void> {
  const st = await lstat(path);
  if (st.isSymbolicLink()) return;
  await chmod(path, 0o755);
  if (st.isDirectory()) for (const c of await readdir(path, { encoding: 'buffer' })) await unsealStore(child(path, c));
}
