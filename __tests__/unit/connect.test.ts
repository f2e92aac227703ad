// connectRegistries: what it refuses before any request (the registry client is a fake that records).
import { beforeEach, describe, expect, it, vi } from 'vitest';

const made: { registry: string; insecure: boolean; pinged: boolean; plainHosts?: readonly string[] }[] = [];

vi.mock('../../src/registry/client.js', () => ({
  RegistryClient: class {
    readonly made: { registry: string; insecure: boolean; pinged: boolean; plainHosts?: readonly string[] };
    constructor(o: { registry: string; insecure?: boolean; plainHosts?: readonly string[] }) {
      this.made = { registry: o.registry, insecure: o.insecure === true, pinged: false, plainHosts: o.plainHosts };
      made.push(this.made);
    }
    async ping(): Promise<void> {
      this.made.pinged = true;
    }
    async checkPush(): Promise<void> {}
    close(): void {}
  },
}));
vi.mock('../../src/registry/credentials.js', () => ({ resolveCredentialSource: () => ({ credentials: undefined }) }));

const { InputError, parseInputs } = await import('../../src/inputs/index.js');
const { connectRegistries } = await import('../../src/registry/connect.js');

const quiet = { debug: () => {}, info: () => {}, warning: () => {} };
const connect = (values: Record<string, string>) =>
  connectRegistries(parseInputs((n) => values[n] ?? '', { GITHUB_REPOSITORY: 'o/r' }), { logger: quiet, onSecret: () => {} });

describe('connectRegistries', () => {
  beforeEach(() => void made.splice(0));

  it('takes insecure-registries case-insensitively (LOCALHOST:5001 is the localhost:5001 a tag names)', async () => {
    const to = await connect({ attr: 'docker', tags: 'latest,localhost:5001/app:v1', 'insecure-registries': 'LOCALHOST:5001' });
    expect(to.targets).toHaveLength(2);
    expect(made.map((m) => [m.registry, m.insecure])).toEqual([
      ['ghcr.io', false],
      ['localhost:5001', true],
    ]);
  });

  it('gives an insecure-registries entry no tag names to every client as a host plain HTTP may go to, and to none as insecure', async () => {
    await connect({ attr: 'docker', tags: 'latest,localhost:5001/app:v1', 'insecure-registries': 'localhost:5001\nAuth.Local:5002' });
    expect(made.map((m) => [m.registry, m.insecure, m.plainHosts])).toEqual([
      ['ghcr.io', false, ['auth.local:5002']],
      ['localhost:5001', true, ['auth.local:5002']],
    ]);
  });

  it('refuses a bad reuse-tags entry before any request', async () => {
    const run = connect({ attr: 'docker', 'reuse-tags': 'latest\nghcr.io/other/app:v1' });
    await expect(run).rejects.toThrow(InputError);
    await expect(run).rejects.toThrow(/^input reuse-tags: expected a repository of the same registry without its host/);
    expect(made).toEqual([]);
  });

  it('reads every merge entry before any request, against the first repository tags names', async () => {
    const run = (merge: string, more: Record<string, string> = {}) => connect({ attr: 'docker', merge, ...more });
    await expect(run(`sha256:${'a'.repeat(64)}\nsha256:abc`)).rejects.toThrow(InputError);
    await expect(run(`sha256:${'a'.repeat(64)}\nsha256:abc`)).rejects.toThrow(/^input merge: expected a digest sha256:<64 lower-case hex digits>, got "sha256:abc"$/);
    await expect(run('other.example/app:v1')).rejects.toThrow(/^input merge: "other\.example\/app:v1" is in registry other\.example, not ghcr\.io/);
    await expect(run('Bad/Repo:v1')).rejects.toThrow(/^input merge: expected a lower-case repository path/);
    expect(made).toEqual([]);
    await expect(run('other.example/app:v1', { tags: 'other.example/o/r:v1' })).resolves.toBeDefined();
    await expect(run(`amd64\nsha256:${'b'.repeat(64)}\nteam/base@sha256:${'c'.repeat(64)}`)).resolves.toBeDefined();
  });
});
