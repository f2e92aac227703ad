// The workflow files — this repository's (.github/workflows/) and the examples' (examples/<name>/.github/
// workflows/) — and action.yml are checked with GitHub's own parser, @actions/workflow-parser (from
// actions/languageservices, what the Actions editor extension runs): an unknown or misspelt key, a missing
// required one, a bad expression or a context used where it is not available is an error. On top of it, our
// own check: every step that uses this action (`uses: ./` or `uses: nix-image-action/nix-image-action@…`)
// passes only inputs that action.yml declares. The examples' flakes are checked to parse.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { readActionYml, repoRoot } from '../support/action.js';

const run = promisify(execFile);

type WorkflowParser = typeof import('@actions/workflow-parser') & Pick<typeof import('@actions/workflow-parser/actions/index'), 'parseAction'>;

/**
 * The parser, bundled for Node: the package imports its JSON schemas without `with { type: 'json' }`,
 * which only bundlers accept (actions/languageservices#387), so Node and vitest cannot import it as it
 * is. esbuild (already here for dist/) inlines them; the bundle is CommonJS because `yaml` inside it uses
 * require(). Offline: everything comes from node_modules.
 */
async function loadParser(): Promise<WorkflowParser> {
  const out = join(await mkdtemp(join(tmpdir(), 'nia-workflow-parser-')), 'workflow-parser.cjs');
  await build({
    stdin: {
      contents: "export * from '@actions/workflow-parser'; export { parseAction } from '@actions/workflow-parser/actions/index';",
      resolveDir: repoRoot,
      loader: 'js',
    },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    outfile: out,
    logLevel: 'silent',
  });
  return createRequire(import.meta.url)(out) as WorkflowParser;
}

/** Inputs the examples may pass before action.yml declares them (none now: keep it empty, and visible). */
const examplesMayUse: ReadonlySet<string> = new Set<string>([]);

/** This action, in the two ways a workflow names it. */
const usesThisAction = (uses: unknown): boolean => uses === './' || (typeof uses === 'string' && /^nix-image-action\/nix-image-action@./.test(uses));

function walk(dir: string, keep: (rel: string) => boolean): string[] {
  if (!existsSync(dir)) return [];
  return (readdirSync(dir, { recursive: true, encoding: 'utf8' }) as string[])
    .filter((rel) => !rel.split('/').includes('node_modules') && keep(rel))
    .map((rel) => join(dir, rel))
    .sort();
}

const workflowFile = (rel: string) => /(^|\/)\.github\/workflows\/[^/]+\.ya?ml$/.test(rel);
const repoWorkflows = walk(join(repoRoot, '.github', 'workflows'), (rel) => /^[^/]+\.ya?ml$/.test(rel));
const exampleWorkflows = walk(join(repoRoot, 'examples'), workflowFile);
const exampleDirs = readdirSync(join(repoRoot, 'examples'), { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

let parser: WorkflowParser;
let declared: Set<string>;

beforeAll(async () => {
  parser = await loadParser();
  declared = new Set(Object.keys((await readActionYml()).inputs));
});

/** Errors of GitHub's parser for a workflow file: the schema, then the conversion (jobs, needs, matrix, expressions). */
async function parserErrors(file: string): Promise<string[]> {
  const name = relative(repoRoot, file);
  const trace = new parser.NoOperationTraceWriter();
  const parsed = parser.parseWorkflow({ name, content: await readFile(file, 'utf8') }, trace);
  if (parsed.value !== undefined && parsed.context.errors.getErrors().length === 0) {
    await parser.convertWorkflowTemplate(parsed.context, parsed.value);
  }
  return [...new Set(parsed.context.errors.getErrors().map((e) => e.message))];
}

/** `with:` keys of the steps that use this action which action.yml does not declare (minus `allowed`). */
async function undeclaredInputs(file: string, allowed: ReadonlySet<string> = new Set()): Promise<string[]> {
  const doc = parseYaml(await readFile(file, 'utf8')) as { jobs?: Record<string, { steps?: { uses?: unknown; with?: Record<string, unknown> }[] }> };
  const bad: string[] = [];
  for (const [job, spec] of Object.entries(doc.jobs ?? {})) {
    for (const [i, step] of (spec.steps ?? []).entries()) {
      if (!usesThisAction(step.uses)) continue;
      for (const key of Object.keys(step.with ?? {})) {
        if (!declared.has(key) && !allowed.has(key)) bad.push(`${relative(repoRoot, file)}: jobs.${job}.steps[${i}] passes ${key}, which action.yml does not declare`);
      }
    }
  }
  return bad;
}

describe('workflow files', () => {
  it('finds the workflows to check', () => {
    expect(repoWorkflows.map((f) => relative(repoRoot, f))).toEqual(expect.arrayContaining(['.github/workflows/test.yml', '.github/workflows/example.yml']));
    expect(exampleWorkflows.length).toBeGreaterThanOrEqual(4);
  });

  it('action.yml passes the action schema', async () => {
    const parsed = parser.parseAction({ name: 'action.yml', content: await readFile(join(repoRoot, 'action.yml'), 'utf8') }, new parser.NoOperationTraceWriter());
    expect(parsed.context.errors.getErrors().map((e) => e.message)).toEqual([]);
  });

  it.each([...repoWorkflows, ...exampleWorkflows].map((f) => relative(repoRoot, f)))('%s passes the workflow schema', async (rel) => {
    expect(await parserErrors(join(repoRoot, rel))).toEqual([]);
  });

  it.each(repoWorkflows.map((f) => relative(repoRoot, f)))('%s passes only inputs that action.yml declares', async (rel) => {
    expect(await undeclaredInputs(join(repoRoot, rel))).toEqual([]);
  });

  it.each(exampleWorkflows.map((f) => relative(repoRoot, f)))('%s passes only inputs that action.yml declares (or the allowlist)', async (rel) => {
    expect(await undeclaredInputs(join(repoRoot, rel), examplesMayUse)).toEqual([]);
  });

  it('fails on a copy with a typo: a misspelt key, a misspelt input, a misspelt action.yml key', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nia-workflow-typo-'));
    const source = await readFile(join(repoRoot, '.github', 'workflows', 'example.yml'), 'utf8');
    expect(source).toMatch(/^ {4}runs-on: /m);
    expect(source).toMatch(/^ {10}tags: /m);

    const key = join(dir, 'key.yml');
    await writeFile(key, source.replace(/^( {4})runs-on: /m, '$1runs_on: '));
    expect(await parserErrors(key)).toEqual(expect.arrayContaining([expect.stringMatching(/Unexpected value 'runs_on'/), expect.stringMatching(/Required property is missing: runs-on/)]));

    // The schema takes any `with:` key (it does not know the action's inputs): our own check does.
    const input = join(dir, 'input.yml');
    await writeFile(input, source.replace(/^( {10})tags: /m, '$1tag: '));
    expect(await parserErrors(input)).toEqual([]);
    expect(await undeclaredInputs(input)).toEqual([expect.stringMatching(/jobs\.image\.steps\[1\] passes tag, which action\.yml does not declare$/)]);
    // ...and the examples' allowlist lets through only what it names.
    expect(await undeclaredInputs(input, examplesMayUse)).toHaveLength(1);

    const expression = join(dir, 'expression.yml');
    await writeFile(expression, source.replace('${{ github.sha }}', '${{ github.sha }'));
    expect(await parserErrors(expression)).not.toEqual([]);

    const action = await readFile(join(repoRoot, 'action.yml'), 'utf8');
    expect(action).toMatch(/^ {2}post-if: /m);
    const typo = parser.parseAction({ name: 'action.yml', content: action.replace(/^( {2})post-if: /m, '$1post_if: ') }, new parser.NoOperationTraceWriter());
    expect(typo.context.errors.getErrors().map((e) => e.message)).toEqual([expect.stringMatching(/Unexpected value 'post_if'/)]);
  });
});

describe('examples', () => {
  // examples/offline is what scripts/try.sh builds, without nixpkgs: it has no workflow.
  const withWorkflow = exampleDirs.filter((d) => d !== 'offline');

  it('has the monorepo, multi-arch, Go and Python examples', () => {
    expect(withWorkflow).toEqual(expect.arrayContaining(['go-service', 'monorepo', 'multiarch', 'nixpkgs', 'python-app']));
  });

  it.each(withWorkflow)('examples/%s has a flake.nix and its workflow in .github/workflows/image.yml, and README names it', async (name) => {
    expect(existsSync(join(repoRoot, 'examples', name, 'flake.nix'))).toBe(true);
    expect(existsSync(join(repoRoot, 'examples', name, '.github', 'workflows', 'image.yml'))).toBe(true);
    expect((await readFile(join(repoRoot, 'README.md'), 'utf8')).includes(`examples/${name}`), `README.md names examples/${name}`).toBe(true);
  });

  it('every flake attribute an example workflow builds is defined in its flake', async () => {
    for (const file of exampleWorkflows) {
      const flake = await readFile(join(file, '..', '..', '..', 'flake.nix'), 'utf8');
      type Matrix = Record<string, unknown> & { include?: Record<string, unknown>[] };
      const doc = parseYaml(await readFile(file, 'utf8')) as { jobs: Record<string, { strategy?: { matrix?: Matrix }; steps: { uses?: unknown; with?: Record<string, string> }[] }> };
      for (const job of Object.values(doc.jobs)) {
        // A merge job builds nothing.
        for (const step of job.steps.filter((s) => usesThisAction(s.uses) && s.with?.merge === undefined)) {
          const attr = step.with?.attr ?? 'docker';
          const fromMatrix = /^\$\{\{\s*matrix\.([\w-]+)\s*\}\}$/.exec(attr)?.[1];
          const matrix = job.strategy?.matrix ?? {};
          const attrs = fromMatrix
            ? [...((matrix[fromMatrix] as unknown[] | undefined) ?? []), ...(matrix.include ?? []).map((m) => m[fromMatrix])].map(String)
            : [attr];
          expect(attrs.length, `${relative(repoRoot, file)}: the values of ${attr}`).toBeGreaterThan(0);
          for (const a of attrs) expect(flake, `${relative(repoRoot, file)} builds ${a}`).toMatch(new RegExp(`^\\s*${a} = `, 'm'));
        }
      }
    }
  });

  // Real nixpkgs flakes: they cannot be built offline, but they must parse.
  it.each(walk(join(repoRoot, 'examples'), (rel) => rel.endsWith('.nix')).map((f) => relative(repoRoot, f)))('%s parses (nix-instantiate --parse)', async (rel) => {
    await run('nix-instantiate', ['--parse', join(repoRoot, rel)], { env: { ...process.env, NIX_CONFIG: 'experimental-features = nix-command flakes' } });
  });

  it.each(walk(join(repoRoot, 'examples'), (rel) => rel.endsWith('.py')).map((f) => relative(repoRoot, f)))('%s parses (python3 ast)', async (rel) => {
    await run('python3', ['-c', 'import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])', join(repoRoot, rel)]);
  });
});
