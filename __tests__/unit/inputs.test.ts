import { describe, expect, it } from 'vitest';
import { DEFAULT_NIX_VERSION } from '../../src/nix/version.js';
import { envInputReader, InputError, isOfficialReleaseUrl, parseInputs, parseSize, splitList } from '../../src/inputs/index.js';

const reader = (values: Record<string, string>) => (name: string) => values[name] ?? '';

describe('parseInputs', () => {
  it('takes an empty nix-version for the default one, as action.yml gives it', () => {
    expect(parseInputs(reader({ attr: 'docker', 'nix-version': '' }), { GITHUB_REPOSITORY: 'o/r' }).nixVersion).toBe(DEFAULT_NIX_VERSION);
    expect(parseInputs(reader({ attr: 'docker', 'nix-version': '2.24.9' }), { GITHUB_REPOSITORY: 'o/r' }).nixVersion).toBe('2.24.9');
    expect(parseInputs(reader({ attr: 'docker', 'nix-version': '2.4' }), { GITHUB_REPOSITORY: 'o/r' }).nixVersion).toBe('2.4'); // released as 2.4
    expect(parseInputs(reader({ attr: 'docker', 'nix-version': '2.26.0pre20241111_3df2c41' }), { GITHUB_REPOSITORY: 'o/r' }).nixVersion).toBe('2.26.0pre20241111_3df2c41');
  });

  it('applies defaults and takes the image from the repository, lower-cased', () => {
    const inputs = parseInputs(reader({ attr: 'docker' }), { GITHUB_REPOSITORY: 'Octo-Org/My-App' });
    expect(inputs).toMatchObject({
      flake: '.',
      attr: 'docker',
      registry: 'ghcr.io',
      image: 'octo-org/my-app',
      tags: ['latest'],
      reuseTags: [],
      push: true,
      insecure: false,
      cache: true,
      cacheMaxSize: 4 * 1024 ** 3,
      installNix: 'auto',
    });
  });

  it('splits tags on lines and commas, dropping blanks and duplicates', () => {
    expect(splitList('latest, v1\n\n v1.2 ,latest\n')).toEqual(['latest', 'v1', 'v1.2']);
  });

  it('takes reuse-tags as a list, and an empty one as none (action.yml supplies latest)', () => {
    expect(parseInputs(reader({ attr: 'docker', 'reuse-tags': 'latest\nmain' }), { GITHUB_REPOSITORY: 'o/r' }).reuseTags).toEqual(['latest', 'main']);
    expect(parseInputs(reader({ attr: 'docker', 'reuse-tags': '' }), { GITHUB_REPOSITORY: 'o/r' }).reuseTags).toEqual([]);
  });

  it('reads INPUT_ variables the way the runner sets them (hyphens kept)', () => {
    const get = envInputReader({ 'INPUT_GITHUB-TOKEN': ' tok ', INPUT_ATTR: 'img' });
    expect(get('github-token')).toBe('tok');
    expect(get('attr')).toBe('img');
  });

  it.each([
    [{ attr: '' }, /^input attr: expected the flake attribute/],
    [{ attr: 'docker', push: 'yes' }, /^input push: expected true or false, got "yes"$/],
    [{ attr: 'docker', 'install-nix': 'maybe' }, /^input install-nix: expected one of auto, true, false/],
    [{ attr: 'docker', 'cache-max-size': 'lots' }, /^input cache-max-size: expected a size/],
    [{ attr: 'docker', flake: '.#docker' }, /^input flake: expected a flake reference without #attribute/],
    [{ attr: 'docker', 'nix-sha256': 'abc' }, /^input nix-sha256: expected 64 hexadecimal/],
    [{ attr: 'docker', tags: ' , ' }, /^input tags: expected at least one tag/],
  ])('rejects %j with a one-line error naming the input', (values, message) => {
    const parse = () => parseInputs(reader(values), { GITHUB_REPOSITORY: 'o/r' });
    expect(parse).toThrow(InputError);
    expect(parse).toThrow(message);
  });

  it('refuses a nix-install-url without nix-sha256 unless it is the official release tarball', () => {
    const parse = (values: Record<string, string>) => () => parseInputs(reader({ attr: 'docker', ...values }), { GITHUB_REPOSITORY: 'o/r' });
    const mirror = 'https://mirror.example/nix-2.31.2-x86_64-linux.tar.xz';
    expect(parse({ 'nix-install-url': mirror })).toThrow(InputError);
    expect(parse({ 'nix-install-url': mirror })).toThrow(
      /^input nix-install-url: needs nix-sha256 unless it is the official release URL \(a checksum fetched from the same server proves nothing\)$/,
    );
    // Not even the official host over plain HTTP, nor another file on it.
    expect(parse({ 'nix-install-url': 'http://releases.nixos.org/nix/nix-2.31.2/nix-2.31.2-x86_64-linux.tar.xz' })).toThrow(/^input nix-install-url: /);
    expect(parse({ 'nix-install-url': 'https://releases.nixos.org/nix/nix-2.31.2/nix-2.30.0-x86_64-linux.tar.xz' })).toThrow(/^input nix-install-url: /);
    expect(parse({ 'nix-install-url': mirror, 'nix-sha256': 'ab'.repeat(32) })().nixInstallUrl).toBe(mirror);
    const official = 'https://releases.nixos.org/nix/nix-2.31.2/nix-2.31.2-aarch64-linux.tar.xz';
    expect(parse({ 'nix-install-url': official })().nixInstallUrl).toBe(official);
    expect(isOfficialReleaseUrl(official)).toBe(true);
  });

  it.each(['v2.35.2', '2.35.x', 'latest', '2.35.2-rc1', '2.3.16', '1.0.0'])('refuses nix-version %j in one line, before any download', (version) => {
    const parse = () => parseInputs(reader({ attr: 'docker', 'nix-version': version }), { GITHUB_REPOSITORY: 'o/r' });
    expect(parse).toThrow(InputError);
    expect(parse).toThrow(/^input nix-version: expected (a Nix version such as \d+\.\d+\.\d+|Nix 2\.4 or newer \(the oldest this action supports\)), got "[^"\n]*"$/);
  });

  it('lower-cases insecure-registries, as the hosts tags name are', () => {
    const parsed = parseInputs(reader({ attr: 'docker', 'insecure-registries': 'LOCALHOST:5001, Registry.Example:5000' }), { GITHUB_REPOSITORY: 'o/r' });
    expect(parsed.insecureRegistries).toEqual(['localhost:5001', 'registry.example:5000']);
  });

  it('refuses sbom-attach: true with merge (a merge attaches nothing to the index)', () => {
    const parse = () => parseInputs(reader({ attr: 'docker', merge: `sha256:${'a'.repeat(64)}`, 'sbom-attach': 'true' }), { GITHUB_REPOSITORY: 'o/r' });
    expect(parse).toThrow(InputError);
    expect(parse).toThrow(/^input sbom-attach: true and merge do not go together \([^\n]*\)$/);
  });

  it('refuses build-args with a quote left open, in one line, and keeps good ones as given', () => {
    const parse = (args: string) => () => parseInputs(reader({ attr: 'docker', 'build-args': args }), { GITHUB_REPOSITORY: 'o/r' });
    expect(parse('--arg x "unclosed')).toThrow(InputError);
    expect(parse('--arg x "unclosed')).toThrow(/^input build-args: unterminated " quote \(opened at character 9 of 17\)$/);
    expect(parse("--impure\n--arg x 'y")).toThrow(/^input build-args: unterminated ' quote \(opened at character 18 of 19\)$/);
    // A token after the open quote is not printed (the inputs are masked only once they are read).
    expect(parse('--access-tokens "github.com=ghp_secretToken')).toThrow(/^input build-args: unterminated " quote \(opened at character 17 of \d+\)$/);
    expect(parse('--arg x "a b" -L')().buildArgs).toBe('--arg x "a b" -L');
  });

  it('needs an image when there is no repository to default to', () => {
    expect(() => parseInputs(reader({ attr: 'docker' }), {})).toThrow(/^input image: is empty/);
  });

  it('parses sizes with binary and decimal units', () => {
    expect(parseSize('s', '500MiB')).toBe(500 * 1024 ** 2);
    expect(parseSize('s', '2GB')).toBe(2e9);
    expect(parseSize('s', '1024')).toBe(1024);
  });
});
