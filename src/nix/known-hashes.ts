// SHA-256 of official Nix release tarballs (https://releases.nixos.org/nix/nix-<v>/nix-<v>-<system>.tar.xz),
// shipped with the action so that installing one of these versions trusts no server for its checksum.
// Each value is the `hash=` the release's own install script (releases.nixos.org/nix/nix-<v>/install)
// lists for that tarball, as found in copies of that script and in pins of other projects that agree.
// A version not listed here has its published .sha256 fetched (the official URL only).

const KNOWN: Record<string, Partial<Record<'x86_64-linux' | 'aarch64-linux', string>>> = {
  // nix-2.35.2/install (also pinned as such by independent projects)
  '2.35.2': {
    'x86_64-linux': '0c3960a9792331a22081c3c7a5d8465db9b17c50b3acdf18587fa4c6f2cb1158',
    'aarch64-linux': '4d0302a2910f5eec1c33b8deef634f04899a75737e7001ec49908d003ae5efda',
  },
  // nix-2.35.1/install
  '2.35.1': {
    'x86_64-linux': 'c3fe29778acaa93b5095ee66e36f11ec7c6a284c40970a24cc83ac4f04809db3',
    'aarch64-linux': '79b739996f1751573b4d2b56e4ae607855184c711f2cc1274fa0952a13d4bfc9',
  },
  // nix-2.24.9/install
  '2.24.9': {
    'x86_64-linux': '3c0779e4878d1289cf3fbb158ec5ea9bdf61dfb9b4efac6b3b0b6bec5ba4cf13',
    'aarch64-linux': 'c57c2830bb407e02dacdf2b63c49cde273f905075b579f6d9a6114c669301f33',
  },
};

const OFFICIAL = /^https:\/\/releases\.nixos\.org\/nix\/nix-([^/]+)\/nix-\1-(x86_64-linux|aarch64-linux)\.tar\.xz$/;

/** The shipped SHA-256 of an official release tarball URL, if this action knows it. */
export function knownSha256(url: string): string | undefined {
  const m = OFFICIAL.exec(url);
  if (!m) return undefined;
  return KNOWN[m[1]!]?.[m[2] as 'x86_64-linux' | 'aarch64-linux'];
}

/** The versions with a shipped hash for `system`. */
export function knownVersions(system: string): string[] {
  return Object.keys(KNOWN).filter((v) => KNOWN[v]![system as 'x86_64-linux'] !== undefined);
}
