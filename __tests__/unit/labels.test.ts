// labels, annotations and the settings digest: parsing the inputs, merging labels into a config as
// json.dumps(indent=4) writes it (checked against Python), the default source annotation.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { InputError, parseKeyValues } from '../../src/inputs/index.js';
import { labelled, withLabels } from '../../src/image/labels.js';
import type { ImageInput, LayerListing } from '../../src/image/types.js';
import { manifestAnnotations, settingsDigest } from '../../src/image/settings.js';

describe('parseKeyValues', () => {
  it('reads metadata-action output: one key=value per line, the value verbatim after the first =', () => {
    expect(parseKeyValues('labels', 'a=1\n\n# note\nb = x=y \r\na=2')).toEqual([
      ['b', 'x=y'],
      ['a', '2'],
    ]);
  });
  it('names the input and the line of a bad entry', () => {
    expect(() => parseKeyValues('labels', 'ok=1\nno-equals')).toThrow(new InputError('labels', 'expected key=value on every line, got "no-equals" on line 2'));
    expect(() => parseKeyValues('annotations', '=v')).toThrow(/^input annotations: expected key=value/);
  });
});

describe('withLabels', () => {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', config: { Cmd: ['/x'], Labels: { z: '1', a: '2' } }, rootfs: { type: 'layers', diff_ids: [] } }));
  it('leaves the config byte for byte when there are no labels', () => {
    expect(withLabels(config, [])).toBe(config);
  });
  it('overrides in place, appends new ones, and writes what Python json.dumps(indent=4) writes', () => {
    const out = withLabels(config, [['a', 'new'], ['é', 'ü']]);
    const python = execFileSync('python3', ['-c', 'import json,sys; c=json.load(sys.stdin); c["config"]["Labels"]["a"]="new"; c["config"]["Labels"]["\\u00e9"]="\\u00fc"; sys.stdout.write(json.dumps(c, indent=4))'], { input: config });
    expect(out.toString('utf8')).toBe(python.toString('utf8'));
  });
  it('adds Labels (and config) when the image has none', () => {
    const bare = Buffer.from('{"architecture":"amd64"}');
    expect(JSON.parse(withLabels(bare, [['k', 'v']]).toString())).toEqual({ architecture: 'amd64', config: { Labels: { k: 'v' } } });
  });
});

describe('manifestAnnotations and settingsDigest', () => {
  it('adds the repository as source unless asked not to', () => {
    const env = { GITHUB_REPOSITORY: 'acme/widget', GITHUB_SERVER_URL: 'https://github.example/' };
    expect(manifestAnnotations([], env)).toEqual([['org.opencontainers.image.source', 'https://github.example/acme/widget']]);
    expect(manifestAnnotations([['org.opencontainers.image.source', '']], env)).toEqual([]);
    expect(manifestAnnotations([['x', '1']], {})).toEqual([['x', '1']]);
  });
  it('changes with a label or an annotation, and only then', () => {
    const a = settingsDigest({ labels: [['k', 'v']] });
    expect(settingsDigest({ labels: [['k', 'v']] })).toBe(a);
    expect(settingsDigest({ labels: [['k', 'w']] })).not.toBe(a);
    expect(settingsDigest({ labels: [['k', 'v']], annotations: [['x', '1']] })).not.toBe(a);
    expect(settingsDigest({ compression: { algorithm: 'gzip', level: 6 }, labels: [['k', 'v']] })).not.toBe(a);
    // The way the layers are read changes what the manifest records: an image pushed from its archive is
    // not the one a later job that makes the layers from the store would push, and the other way round.
    expect(settingsDigest({ labels: [['k', 'v']], layersFrom: 'auto' })).toBe(a);
    expect(settingsDigest({ labels: [['k', 'v']], layersFrom: 'archive' })).not.toBe(a);
  });
});

describe('labelled', () => {
  it('passes the store paths through as they stand when read, not when the layers were visited', async () => {
    let paths: (string[] | undefined)[] = [undefined];
    const input: ImageInput = {
      description: 'test',
      readLayers: async (): Promise<LayerListing> => ({
        order: ['a'],
        config: () => Buffer.from('{"config":{}}'),
        get storePaths() {
          return paths;
        },
      }),
    };
    const listing = await labelled(input, [['org.example', 'x']]).readLayers(async () => {});
    paths = [['/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-app']];
    expect(listing.storePaths).toEqual([['/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-app']]);
    expect(JSON.parse(listing.config([]).toString()).config.Labels).toEqual({ 'org.example': 'x' });
  });
});
