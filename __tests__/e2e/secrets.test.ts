// Secrets, end to end, through the runner emulation's masking (support/action.ts): the bundled action
// runs with a registry password, a github-token, an access token in extra-nix-conf and, when it installs
// Nix, a nix-install-url with userinfo, on success and on failure paths. A probe flake (built with
// --impure) traces the action's inputs and NIX_CONFIG from its evaluation: under --impure Nix is given
// no token at all (flake code could read it), so the unmasked log must not hold them anywhere, while
// what is printed (the userinfo of a download) must be masked. Then every
// file the steps could write (file commands, RUNNER_TEMP, the tool cache, HOME) is searched for the raw
// values, which must be nowhere. And the stream script, code from the flake run outside Nix's sandbox,
// records the environment it was given: none of the action's inputs, tokens or NIX_CONFIG. Last, the
// post step removes the files main recorded under RUNNER_TEMP even when main failed early.
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAction, type ActionRun } from '../support/action.js';
import { expectNoSecret } from '../support/expect-run.js';
import { makeImageArchive } from '../support/archives.js';
import { makeNixRelease, nixTestEnv, pathWithoutNix, serveDirectory, type FileServer, type NixRelease } from '../support/nix.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';

const PASSWORD = 'pw-Secr3t-e2e-9f1c';
const GITHUB_TOKEN = 'ghs_e2eSecretToken1234567890abcdef';
const NIX_TOKEN = 'ghp_NixAccessToken0987654321zyxw';
const URL_PASSWORD = 'url-Pa55-word-77';
const USERINFO = `mirror-user:${URL_PASSWORD}`;
/** Runner tokens the action must keep from the flake's code (the real runner masks these itself). */
const RUNTIME_TOKEN = 'actions-runtime-token-e2e-31337';
const ID_TOKEN = 'actions-id-token-e2e-4242';

const extraNixConf = `access-tokens = github.com=${NIX_TOKEN}`;

interface ProbeFlake {
  flake: string;
  /** Where the stream script writes the environment it got. */
  envRecord: string;
}

/**
 * Shaped like support/flakes.ts's 'stream' fixture (a script that writes the archive to stdout), plus a
 * recorder: the script first writes its environment to a file. Its evaluation traces the secrets the
 * action's own environment holds (only visible with --impure), for the masking to hide; `broken` is a
 * build that fails after the same trace.
 */
async function makeProbeFlake(): Promise<ProbeFlake> {
  const dir = await mkdtemp(join(tmpdir(), 'nia-flake-probe-'));
  const records = await mkdtemp(join(tmpdir(), 'nia-probe-env-'));
  await chmod(records, 0o777); // the stream script runs as nobody
  const envRecord = join(records, 'env');
  const archive = await makeImageArchive({
    dir,
    name: 'image',
    compression: 'none',
    layers: [
      { size: 20_000, seed: `probe-${basename(dir)}`, compressible: true },
      { size: 30_000, seed: `probe-2-${basename(dir)}`, compressible: false },
    ],
  });
  const drv = (name: string, script: string) => `derivation {
      name = ${JSON.stringify(name)};
      system = "x86_64-linux";
      builder = "/bin/sh";
      PATH = "/usr/bin:/bin";
      salt = ${JSON.stringify(basename(dir))};
      args = [ "-c" ${JSON.stringify(script)} ];
    }`;
  // The script records its environment, who it runs as, and what it can read of its parent's.
  const stream = drv(
    'probe-stream-image',
    `printf '#!/bin/sh\\nenv > %s\\nid -u > %s.uid\\n(cat /proc/$PPID/environ 2>/dev/null || echo unreadable) > %s.parent\\nexec cat %s\\n' ${envRecord} ${envRecord} ${envRecord} \${./${basename(archive.path)}} > $out && chmod +x $out`,
  );
  const broken = drv('probe-broken', 'echo "error: the probe build fails on purpose" >&2; exit 3');
  const vars = ['INPUT_PASSWORD', 'INPUT_GITHUB-TOKEN', 'INPUT_EXTRA-NIX-CONF', 'INPUT_NIX-INSTALL-URL', 'NIX_CONFIG'];
  const probe = vars.map((v) => `probe ${v}=\${builtins.getEnv ${JSON.stringify(v)}}`).join('\n');
  await writeFile(
    join(dir, 'flake.nix'),
    `{
  outputs = { self }: let probe = builtins.trace ''\n${probe}\n''; in {
    docker = probe (${stream});
    broken = probe (${broken});
  };
}
`,
  );
  return { flake: `path:${dir}`, envRecord };
}



/** The probe's trace really printed the secrets (so masking is what hides them), and each was masked. */
function expectPrintedAndMasked(run: ActionRun, secrets: string[]): void {
  const printed = run.rawLog.split('\n').filter((l) => !l.startsWith('::add-mask::'));
  for (const secret of secrets) {
    expect(printed.some((l) => l.includes(secret)), `the probe did not print ${secret}`).toBe(true);
    expect(run.masks, `${secret} was not masked`).toContain(secret);
  }
}

/**
 * Under --impure the tokens never reach Nix: the probe traced NIX_CONFIG, and neither it nor anything else
 * in the unmasked log holds them; they are masked all the same, and a notice says why Nix got none.
 */
function expectWithheldFromNix(run: ActionRun, secrets: string[]): void {
  const printed = run.rawLog.split('\n').filter((l) => !l.startsWith('::add-mask::'));
  expect(printed.some((l) => /probe NIX_CONFIG=/.test(l)), 'the probe traced no NIX_CONFIG').toBe(true);
  for (const secret of secrets) {
    expect(printed.filter((l) => l.includes(secret)), `${secret} reached the log unmasked`).toEqual([]);
    expect(run.masks, `${secret} was not masked`).toContain(secret);
  }
  expect(run.rawLog).toMatch(/::notice::the evaluation is impure \(build-args or Nix settings\).*Nix gets no github-token/);
}

/** Nix ran the probe's (impure) evaluation without the action's inputs: each traced INPUT_* is empty. */
function expectHiddenFromNix(run: ActionRun): void {
  const traced = run.rawLog.split('\n').filter((l) => /probe INPUT_/.test(l));
  expect(traced.length, 'the probe traced nothing').toBeGreaterThan(0);
  for (const line of traced) expect(line.trim(), 'flake code saw an input of the action').toMatch(/^(trace: )?probe INPUT_[A-Z-]+=$/);
}

let registry: TestRegistry;
let probe: ProbeFlake;
beforeAll(async () => {
  registry = await startRegistry({ tls: true, auth: 'htpasswd', users: { pusher: PASSWORD } });
  probe = await makeProbeFlake();
});
afterAll(async () => {
  await registry?.stop();
});

async function runner(): Promise<{ home: string; env: Record<string, string> }> {
  const home = await mkdtemp(join(tmpdir(), 'nia-home-'));
  const dockerConfig = await mkdtemp(join(tmpdir(), 'nia-docker-config-'));
  return {
    home,
    env: nixTestEnv({
      HOME: home,
      GITHUB_TOKEN,
      ACTIONS_RUNTIME_TOKEN: RUNTIME_TOKEN,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: ID_TOKEN,
      ACTIONS_ID_TOKEN_REQUEST_URL: 'http://127.0.0.1:9/token',
      DOCKER_CONFIG: dockerConfig,
      REGISTRY_AUTH_FILE: join(dockerConfig, 'auth.json'),
    }),
  };
}

const inputs = (extra: Record<string, string> = {}) => ({
  flake: probe.flake,
  attr: 'docker',
  'build-args': '--impure',
  registry: registry.host,
  insecure: 'true',
  cache: 'false',
  username: 'pusher',
  password: PASSWORD,
  'extra-nix-conf': extraNixConf,
  ...extra,
});

describe('secrets on a runner with Nix', () => {
  it('pushing: every secret is masked where printed and written nowhere; the stream script gets none of them', async () => {
    const { home, env } = await runner();
    const run = await runAction({ runtime: 'node24', inputs: inputs({ image: 'secrets/ok' }), github: { token: GITHUB_TOKEN }, env });
    expect(run.main.errors, run.log).toEqual([]);
    expect(run.main.code).toBe(0);
    expect(run.post?.code).toBe(0);
    expect(run.outputs.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    await expectNoSecret(run, [PASSWORD, GITHUB_TOKEN, NIX_TOKEN, extraNixConf], [home]);
    // --impure: Nix gets no token (flake code could read it); the password never goes near Nix.
    expectWithheldFromNix(run, [GITHUB_TOKEN, NIX_TOKEN]);
    expect(run.masks).toContain(PASSWORD);
    expectHiddenFromNix(run);

    // The stream script ran with PATH, HOME and TMPDIR (both its own: it runs as nobody) and the locale at most.
    const recorded = await readFile(probe.envRecord, 'utf8');
    const names = recorded.split('\n').filter(Boolean).map((l) => l.slice(0, l.indexOf('=')));
    // sh itself sets PWD, SHLVL and _ when it starts.
    expect(names.filter((n) => !['PWD', 'SHLVL', '_', 'OLDPWD'].includes(n)).sort()).toEqual(['HOME', 'PATH', 'TMPDIR']);
    for (const name of names) expect(name).not.toMatch(/^(INPUT_|ACTIONS_|GITHUB_TOKEN$|NIX_CONFIG$|DOCKER_CONFIG$|REGISTRY_AUTH_FILE$)/);
    for (const secret of [PASSWORD, GITHUB_TOKEN, NIX_TOKEN, RUNTIME_TOKEN, ID_TOKEN]) expect(recorded).not.toContain(secret);
    // It ran as nobody, so the action's own environment (its parent's /proc/<pid>/environ) was closed to it.
    expect((await readFile(`${probe.envRecord}.uid`, 'utf8')).trim()).toBe('65534');
    const parent = await readFile(`${probe.envRecord}.parent`, 'utf8');
    expect(parent.trim()).toBe('unreadable');
    for (const secret of [PASSWORD, GITHUB_TOKEN, NIX_TOKEN, RUNTIME_TOKEN, ID_TOKEN]) expect(parent).not.toContain(secret);
  });

  it('a pure evaluation: Nix gets the secret settings through a FIFO of its own, and no file holds them', async () => {
    const { home, env } = await runner();
    // A secret line Nix does not know: its warning shows Nix read the secret settings (the name, not the value).
    const probe = 'x-nia-probe-secret';
    const run = await runAction({ runtime: 'node24', inputs: inputs({ image: 'secrets/pure', 'build-args': '', 'extra-nix-conf': `${extraNixConf}\n${probe} = probe-value-31337` }), github: { token: GITHUB_TOKEN }, env, post: false });
    expect(run.main.errors, run.log).toEqual([]);
    expect(run.rawLog).toContain(`unknown setting '${probe}'`);
    expect(run.rawLog.split('\n').filter((l) => !l.startsWith('::add-mask::')).join('\n')).not.toContain('probe-value-31337');
    expect(run.outputs.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    // The probe saw NIX_CONFIG name the include, never the tokens themselves.
    const traced = run.rawLog.split('\n').filter((l) => /probe NIX_CONFIG=/.test(l));
    for (const line of traced) expect(line).not.toMatch(new RegExp(`${GITHUB_TOKEN}|${NIX_TOKEN}`));
    // Later steps of the job (no post step has run yet) find the tokens in no file.
    await expectNoSecret(run, [PASSWORD, GITHUB_TOKEN, NIX_TOKEN, extraNixConf], [home]);
    expect(run.tempAfterMain.filter((p) => p.endsWith('nix.conf'))).toEqual([]);
  });

  it('a wrong password: fails naming the registry and the status, with no secret shown or written', async () => {
    const { home, env } = await runner();
    const wrong = 'wrong-Pa55-e2e-0000';
    const run = await runAction({ runtime: 'node24', inputs: inputs({ image: 'secrets/wrong', password: wrong }), github: { token: GITHUB_TOKEN }, env });
    expect(run.main.code).not.toBe(0);
    expect(run.main.errors).toEqual([`registry ${registry.host} rejected the credentials of pusher (401)`]);
    expect(run.post?.code).toBe(0);
    expect(run.masks).toContain(wrong);
    await expectNoSecret(run, [wrong, PASSWORD, GITHUB_TOKEN, NIX_TOKEN], [home]);
  });

  it('a failing build: fails naming the derivation, with every secret it printed masked', async () => {
    const { home, env } = await runner();
    const run = await runAction({ runtime: 'node24', inputs: inputs({ image: 'secrets/broken', attr: 'broken' }), github: { token: GITHUB_TOKEN }, env });
    expect(run.main.code).not.toBe(0);
    expect(run.main.errors).toHaveLength(1);
    expect(run.main.errors[0]).toMatch(
      /^nix build path:\S+#broken failed: builder for '\/nix\/store\/[0-9a-z]{32}-probe-broken\.drv' failed with exit code 3; last log lines: error: the probe build fails on purpose$/,
    );
    expect(run.post?.code).toBe(0);
    await expectNoSecret(run, [PASSWORD, GITHUB_TOKEN, NIX_TOKEN, extraNixConf], [home]);
    expectWithheldFromNix(run, [GITHUB_TOKEN, NIX_TOKEN]);
    expectHiddenFromNix(run);
  });
});

describe('secrets when the action installs Nix', () => {
  let release: NixRelease;
  let server: FileServer;
  let noNix: string;
  beforeAll(async () => {
    release = await makeNixRelease('2.97.0', 'x86_64-linux');
    server = await serveDirectory(release.dir);
    noNix = await pathWithoutNix();
  });
  afterAll(async () => server?.stop());

  const withUserinfo = (path: string) => server.url.replace('http://', `http://${USERINFO}@`) + path;

  it('installing from a URL with userinfo: masked wherever printed; no token in nix.conf, the installer, RUNNER_TEMP', async () => {
    const { home, env } = await runner();
    const url = withUserinfo(`/nix-${release.version}-${release.system}.tar.xz`);
    const run = await runAction({
      runtime: 'node24',
      inputs: inputs({ push: 'false', 'install-nix': 'true', 'nix-version': release.version, 'nix-install-url': url, 'nix-sha256': release.sha256 }),
      github: { token: GITHUB_TOKEN },
      env: { ...env, PATH: noNix },
    });
    expect(run.main.errors, run.log).toEqual([]);
    expect(run.main.code).toBe(0);
    expect(run.post?.code).toBe(0);
    expect(run.main.stdout).toContain(`downloading ${server.url.replace('http://', 'http://***@')}/nix-${release.version}`);
    // HOME holds the installer's record of the nix.conf lines it was given, and the single-user nix.conf.
    expect(await readFile(join(home, 'installer-record'), 'utf8')).toContain('trusted-users = root');
    expect(await readFile(join(home, '.config', 'nix', 'nix.conf'), 'utf8')).toContain('experimental-features = nix-command flakes');
    await expectNoSecret(run, [USERINFO, URL_PASSWORD, PASSWORD, GITHUB_TOKEN, NIX_TOKEN, extraNixConf], [home]);
    expectPrintedAndMasked(run, [USERINFO]);
    expectWithheldFromNix(run, [GITHUB_TOKEN, NIX_TOKEN]);
    expectHiddenFromNix(run);
    expect(await readdir(run.runnerTemp)).toEqual([]);
  });

  it('a download that fails: the error names the URL with its userinfo masked, and the status', async () => {
    const { home, env } = await runner();
    const run = await runAction({
      runtime: 'node24',
      inputs: inputs({ push: 'false', 'install-nix': 'true', 'nix-version': release.version, 'nix-install-url': withUserinfo('/missing.tar.xz'), 'nix-sha256': release.sha256 }),
      github: { token: GITHUB_TOKEN },
      env: { ...env, PATH: noNix },
    });
    expect(run.main.code).not.toBe(0);
    expect(run.main.errors).toHaveLength(1);
    expect(run.main.errors[0]).toMatch(new RegExp(`^cannot download the Nix tarball http://\\*\\*\\*@${server.url.slice('http://'.length).replace(/\./g, '\\.')}/missing\\.tar\\.xz: .*\\b404\\b`));
    expect(run.post?.code).toBe(0);
    await expectNoSecret(run, [USERINFO, URL_PASSWORD, PASSWORD, GITHUB_TOKEN, NIX_TOKEN], [home]);
    expect(await readdir(run.runnerTemp)).toEqual([]);
  });
});

describe('the post step', () => {
  it('removes the files main recorded, first, even when main failed before saving any other state', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nia-recorded-'));
    const file = join(dir, 'nix-image-action.nix.conf');
    const unpacked = join(dir, 'nix-image-action-unpacked');
    await writeFile(file, 'trusted-users = root runner\n');
    await mkdir(unpacked);
    await writeFile(join(unpacked, 'install'), '#!/bin/sh\n');
    // As main's recordTempFile leaves it; main itself fails on its first input.
    const run = await runAction({
      runtime: 'node24',
      inputs: { attr: '' },
      env: nixTestEnv({ 'STATE_nix-image-action-temp': JSON.stringify([file, unpacked]) }),
    });
    expect(run.main.errors).toEqual(['input attr: expected the flake attribute that builds the image, e.g. docker']);
    expect(run.post?.code).toBe(0);
    expect(run.post?.warnings).toEqual([]);
    expect(existsSync(file)).toBe(false);
    expect(existsSync(unpacked)).toBe(false);
  });
});
