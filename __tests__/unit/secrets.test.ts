// Secret hygiene at the unit level: which values of the Nix inputs are masked, and the environment that
// code from the flake (a stream script) and the installer get, and which build-args make evaluation impure.
import { describe, expect, it } from 'vitest';
import { buildArgSecrets, evaluatesImpurely, maskNixSecrets, nixConfSecrets, urlSecrets } from '../../src/nix/secrets.js';
import { nixConfig } from '../../src/nix/install.js';
import { publishableArgs } from '../../src/report/provenance.js';
import { isSecretVariable, scrubbedEnv, withoutSecrets } from '../../src/image/child-env.js';

describe('nix-install-url userinfo', () => {
  it('masks the userinfo and the password, also percent-decoded', () => {
    expect(urlSecrets('https://deploy:s%40cret-pw@mirror.example/nix.tar.xz')).toEqual(['deploy:s%40cret-pw', 's%40cret-pw', 's@cret-pw']);
  });
  it('masks a user name that stands alone: it is the token', () => {
    expect(urlSecrets('https://ghp_abcdef123456@mirror.example/nix.tar.xz')).toEqual(['ghp_abcdef123456']);
    expect(urlSecrets('https://tok123:@mirror.example/nix.tar.xz')).toEqual(['tok123:', 'tok123']);
  });
  it('finds nothing in a URL without userinfo, even with an @ in its path', () => {
    expect(urlSecrets('https://releases.nixos.org/nix/nix-2.31.2/nix-2.31.2-x86_64-linux.tar.xz')).toEqual([]);
    expect(urlSecrets('https://mirror.example/a@b/nix.tar.xz')).toEqual([]);
    expect(urlSecrets('')).toEqual([]);
  });
});

describe('extra-nix-conf secrets', () => {
  it('masks every access-tokens value, with and without a token type', () => {
    const conf = ['access-tokens = github.com=ghp_one gitlab.example=PAT:glpat-two', 'extra-access-tokens = git.example=three-token'].join('\n');
    expect(nixConfSecrets(conf)).toEqual(['ghp_one', 'PAT:glpat-two', 'glpat-two', 'three-token']);
  });
  it('masks password, token and secret settings and netrc-style password pairs, not paths or public keys', () => {
    const conf = [
      'substituters = https://cache.example',
      'trusted-public-keys = cache.example:AAAAC3NzaC1lZDI1NTE5',
      'netrc-file = /etc/nix/netrc',
      'secret-key-files = /etc/nix/key.sec',
      'my-plugin-token = tok-xyz-123',
      'upload-password = hunter22',
      '# access-tokens = github.com=commented-out',
      'machine cache.example login me password netrc-pw-9',
    ].join('\n');
    expect(nixConfSecrets(conf)).toEqual(['tok-xyz-123', 'hunter22', 'netrc-pw-9']);
  });
  it('maskNixSecrets hands each secret of both inputs to setSecret', () => {
    const masked: string[] = [];
    maskNixSecrets({ nixInstallUrl: 'https://u:pw-123@m.example/n.tar.xz', extraNixConf: 'access-tokens = github.com=ghp_x1' }, (v) => masked.push(v));
    expect(masked).toEqual(['u:pw-123', 'pw-123', 'ghp_x1']);
  });
});

describe('credentials in a URL of extra-nix-conf', () => {
  const line = 'extra-substituters = https://cache.nixos.org https://deploy:s3cr3t-pw@cache.example.com';
  it('are masked (Nix prints substituter URLs)', () => {
    expect(nixConfSecrets(line)).toContain('s3cr3t-pw');
  });
  it('are passwords and token-long HTTP(S) user names, not the user names of ssh:// URLs (masking "nix" would hide every /nix/store)', () => {
    expect(nixConfSecrets('builders = ssh://nix@builder.example x86_64-linux')).toEqual([]);
    expect(buildArgSecrets(['--override-input', 'x', 'git+ssh://git@github.com/o/r'])).toEqual([]);
    expect(buildArgSecrets(['--override-input', 'x', 'git+https://ghp_abcdefghijklmnopqrstuvwxyz0123@github.com/o/r'])).toEqual(['ghp_abcdefghijklmnopqrstuvwxyz0123']);
    expect(nixConfig({ extraNixConf: 'builders = ssh://nix@builder.example x86_64-linux' }).env).toContain('builders = ssh://nix@builder.example');
  });
  it('keep their line out of NIX_CONFIG: it goes to the secret conf Nix reads, which flake code cannot', () => {
    const config = nixConfig({ extraNixConf: `${line}\nmax-jobs = 4` });
    expect(config.env).not.toContain('s3cr3t-pw');
    expect(config.env).toContain('max-jobs = 4');
    expect(config.secret).toContain('s3cr3t-pw');
  });
});

describe('secrets in build-args', () => {
  const args = ['--extra-access-tokens', 'github.com=ghp_ONE', '--access-tokens', 'gitlab.example=PAT:glpat-two', '--option', 'netrc-password', 'pw3', '--override-input', 'x', 'git+https://user:tok4@git.example/x', '--max-jobs', '4'];
  it('are masked: every secret setting as a flag or --option, and URL credentials', () => {
    const secrets = buildArgSecrets(args);
    for (const s of ['github.com=ghp_ONE', 'ghp_ONE', 'PAT:glpat-two', 'glpat-two', 'pw3', 'tok4']) expect(secrets).toContain(s);
    expect(secrets).not.toContain('4');
  });
  it('are redacted in the provenance, whichever spelling gave them', () => {
    const published = publishableArgs(args);
    expect(published.join(' ')).not.toMatch(/ghp_ONE|glpat-two|pw3|tok4/);
    expect(published).toEqual(['--extra-access-tokens', '<redacted>', '--access-tokens', '<redacted>', '--option', 'netrc-password', '<redacted>', '--override-input', 'x', 'git+https://git.example/x', '--max-jobs', '4']);
  });
});

describe('impure evaluation, where flake code reads what Nix reads', () => {
  it('is recognised in build-args in each of its spellings', () => {
    expect(evaluatesImpurely(['-L', '--impure'])).toBe(true);
    expect(evaluatesImpurely(['--no-pure-eval'])).toBe(true);
    expect(evaluatesImpurely(['--option', 'pure-eval', 'false'])).toBe(true);
    expect(evaluatesImpurely(['--option', 'pure-eval', '0'])).toBe(true);
  });
  it('not in a pure evaluation, nor in a value that merely says impure', () => {
    expect(evaluatesImpurely(['--option', 'pure-eval', 'true', '--arg', 'impure', '1', '--argstr', 'x', '--impure-flag'])).toBe(false);
    expect(evaluatesImpurely([])).toBe(false);
    // Native code in evaluation runs programs: as impure as it gets.
    expect(evaluatesImpurely(['--allow-unsafe-native-code-during-evaluation'])).toBe(true);
    expect(evaluatesImpurely(['--option', 'allow-unsafe-native-code-during-evaluation', 'true'])).toBe(true);
    // The same through extra-nix-conf or the environment's NIX_CONFIG.
    expect(evaluatesImpurely([], ['max-jobs = 4\npure-eval = false'])).toBe(true);
    expect(evaluatesImpurely([], ['allow-unsafe-native-code-during-evaluation = true'])).toBe(true);
    expect(evaluatesImpurely([], ['pure-eval = true', '# pure-eval = false'])).toBe(false);
  });
});

describe('the environment of code from the flake', () => {
  const runner = {
    PATH: '/usr/bin:/bin',
    HOME: '/home/runner',
    TMPDIR: '/tmp/x',
    LANG: 'C.UTF-8',
    USER: 'runner',
    INPUT_PASSWORD: 'pw',
    'INPUT_GITHUB-TOKEN': 'ghs_x',
    ACTIONS_RUNTIME_TOKEN: 'rt',
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'idt',
    ACTIONS_ID_TOKEN_REQUEST_URL: 'https://token.example',
    ACTIONS_CACHE_URL: 'https://cache.example',
    GITHUB_TOKEN: 'ghs_y',
    DOCKER_CONFIG: '/home/runner/.docker',
    REGISTRY_AUTH_FILE: '/run/auth.json',
    NIX_CONFIG: 'access-tokens = github.com=ghp_z',
    GITHUB_REPOSITORY: 'o/r',
  };
  it('a stream script gets PATH, TMPDIR, HOME and the locale, nothing else', () => {
    expect(scrubbedEnv(runner)).toEqual({ PATH: '/usr/bin:/bin', HOME: '/home/runner', TMPDIR: '/tmp/x', LANG: 'C.UTF-8' });
  });
  it('the installer gets the runner environment without its credentials', () => {
    const env = withoutSecrets(runner);
    expect(Object.keys(env).sort()).toEqual(['GITHUB_REPOSITORY', 'HOME', 'LANG', 'PATH', 'TMPDIR', 'USER']);
    expect(isSecretVariable('ACTIONS_RUNTIME_TOKEN')).toBe(true);
    expect(isSecretVariable('PATH')).toBe(false);
  });
});
