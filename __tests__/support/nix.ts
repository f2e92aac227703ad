// Nix for tests: Debian's nix-bin (Nix 2.8, root, no sandbox), offline. Without `substituters =` every
// build would wait on the unreachable cache.nixos.org.
export const testNixConfig = ['experimental-features = nix-command flakes', 'substituters =', 'sandbox = false'].join('\n');

/** Environment for anything that runs Nix in a test (the bundled action, fixtures, benchmarks). */
export function nixTestEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { NIX_CONFIG: testNixConfig, ...extra };
}
