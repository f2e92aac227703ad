// action.yml is the public API: every input and output must be in README.md's tables with the same default.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readActionYml, repoRoot } from '../support/action.js';

function tableRows(readme: string, heading: string): Map<string, string[]> {
  const section = readme.split(/^## /m).find((s) => s.startsWith(heading));
  if (!section) throw new Error(`README.md has no "## ${heading}" section`);
  const rows = new Map<string, string[]>();
  for (const line of section.split('\n')) {
    const cells = line.split('|').slice(1, -1).map((c) => c.trim());
    const name = /^`([^`]+)`$/.exec(cells[0] ?? '');
    if (name) rows.set(name[1]!, cells.slice(1));
  }
  return rows;
}

describe('action.yml and README.md', () => {
  it('declares the node24 runtime with main and post bundles', async () => {
    const yml = await readActionYml();
    expect(yml.runs).toMatchObject({ using: 'node24', main: 'dist/index.js', post: 'dist/post.js' });
  });

  it('documents every input with its default, and nothing else', async () => {
    const yml = await readActionYml();
    const rows = tableRows(await readFile(join(repoRoot, 'README.md'), 'utf8'), 'Inputs');
    expect([...rows.keys()].sort()).toEqual(Object.keys(yml.inputs).sort());
    for (const [name, spec] of Object.entries(yml.inputs)) {
      const documented = rows.get(name)![0]!;
      const dflt = spec.default ?? '';
      if (name === 'image') expect(dflt).toBe(''); // documented in words: the repository name
      else expect(documented, `README default of ${name}`).toBe(dflt === '' ? '' : `\`${dflt}\``);
    }
  });

  it('documents every output, and nothing else', async () => {
    const yml = await readActionYml();
    const rows = tableRows(await readFile(join(repoRoot, 'README.md'), 'utf8'), 'Outputs');
    expect([...rows.keys()].sort()).toEqual(Object.keys(yml.outputs).sort());
  });
});
