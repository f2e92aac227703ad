// Signing the store cache with a Nix binary cache key, as `nix-store --generate-binary-cache-key` makes
// them: `<name>:<base64>`, the secret key 64 bytes (libsodium's Ed25519: the 32-byte seed, then the
// 32-byte public key), the public key those last 32 bytes. Signatures are made here, in this process:
// the secret key is never written to a file nor handed to Nix.
import { createPrivateKey, sign, type KeyObject } from 'node:crypto';

export interface SecretKey {
  name: string;
  /** `<name>:<base64>` of the public key, as trusted-public-keys takes it. */
  publicKey: string;
  key: KeyObject;
}

const KEY = /^([^:\s]+):([A-Za-z0-9+/]+={0,2})$/;

/** Why `value` is not a Nix key of `bytes` bytes, or undefined when it is; never quotes the value. */
export function keyProblem(value: string, bytes: 32 | 64): string | undefined {
  const m = KEY.exec(value);
  if (!m) return 'expected <name>:<base64>, as nix-store --generate-binary-cache-key writes it';
  const length = Buffer.from(m[2]!, 'base64').length;
  if (length !== bytes) return `expected a key of ${bytes} bytes after "${m[1]}:", got ${length}`;
  return undefined;
}

const base64url = (b: Buffer) => b.toString('base64url');

export function parseSecretKey(value: string): SecretKey {
  const problem = keyProblem(value, 64);
  if (problem) throw new Error(`binary-cache-key: ${problem}`);
  const [, name, data] = KEY.exec(value)!;
  const raw = Buffer.from(data!, 'base64');
  const pub = raw.subarray(32);
  const key = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: base64url(raw.subarray(0, 32)), x: base64url(pub) }, format: 'jwk' });
  return { name: name!, publicKey: `${name}:${pub.toString('base64')}`, key };
}

/** The public key of a secret key, `<name>:<base64 of its last 32 bytes>`. */
export function publicKeyOf(secretKey: string): string {
  return parseSecretKey(secretKey).publicKey;
}

/** The key name of a signature or a key (`<name>:<base64>`). */
export function keyName(value: string): string {
  return value.slice(0, value.indexOf(':'));
}

/** What a narinfo signature signs: `1;<path>;<sha256:base32 NAR hash>;<NAR size>;<references, comma-separated>`. */
export function fingerprint(path: string, narHash: string, narSize: number, references: string[]): string {
  return `1;${path};${narHash};${narSize};${[...references].sort().join(',')}`;
}

/** A narinfo Sig: `<key name>:<base64 Ed25519 signature of the fingerprint>`. */
export function signFingerprint(key: SecretKey, text: string): string {
  return `${key.name}:${sign(null, Buffer.from(text), key.key).toString('base64')}`;
}
