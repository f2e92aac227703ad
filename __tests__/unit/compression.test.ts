// The compression input and what it names: gzip or zstd and a level, parsed in one line per mistake; the
// compressor's id in every layer key and in the settings digest, so a zstd push never takes a gzip
// layer's key (nor the other way round) and an image made one way is never found for a job of the other.
import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { COMPRESSION_LEVELS, compressorID, DEFAULT_COMPRESSION, type Compression } from '../../src/image/compress.js';
import { customisationLayerKey, planKeys, storeLayerKey, type StorePlan } from '../../src/image/plan.js';
import { settingsDigest } from '../../src/image/settings.js';
import { nativeZstd, ZstdUnavailableError } from '../../src/image/zstd.js';
import { InputError, parseCompression, parseInputs } from '../../src/inputs/index.js';
import { layerMediaType, pushedLayerType } from '../../src/registry/manifest.js';
import { MediaTypes } from '../../src/registry/types.js';

const gzip = (level = 4): Compression => ({ algorithm: 'gzip', level });
const zstd = (level = 3): Compression => ({ algorithm: 'zstd', level });

describe('the compression input', () => {
  it('is gzip at level 4 by default, and takes zstd and a level after a colon', () => {
    const parse = (value: string) => parseInputs((n) => (n === 'attr' ? 'docker' : n === 'compression' ? value : ''), { GITHUB_REPOSITORY: 'o/r' }).compression;
    expect(parse('')).toEqual(gzip(4));
    expect(parse('gzip')).toEqual(gzip(4));
    expect(parse('gzip:6')).toEqual(gzip(6));
    expect(parse('zstd')).toEqual(zstd(3));
    expect(parse('zstd:19')).toEqual(zstd(19));
    expect(parse('zstd:1')).toEqual(zstd(1));
    expect(DEFAULT_COMPRESSION).toEqual(gzip(COMPRESSION_LEVELS.gzip.default));
  });

  it.each([
    ['lz4', /^input compression: expected gzip or zstd, optionally with a level \(gzip:6, zstd:9\), got "lz4"$/],
    ['ZSTD', /^input compression: expected gzip or zstd/],
    ['zstd:', /^input compression: expected gzip or zstd/],
    ['zstd:fast', /^input compression: expected gzip or zstd/],
    ['zstd:-1', /^input compression: expected gzip or zstd/],
    ['zstd:0', /^input compression: zstd levels go from 1 to 19, got "zstd:0"$/],
    ['zstd:22', /^input compression: zstd levels go from 1 to 19, got "zstd:22"$/],
    ['gzip:10', /^input compression: gzip levels go from 1 to 9, got "gzip:10"$/],
    ['gzip:0', /^input compression: gzip levels go from 1 to 9/],
  ])('refuses %j in one line naming the input', (value, message) => {
    expect(() => parseCompression(value)).toThrow(InputError);
    expect(() => parseCompression(value)).toThrow(message);
  });
});

describe("the compressor's identity", () => {
  const plan: StorePlan = {
    storeLayers: [['/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-base'], ['/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-app']],
    customisationLayer: '/nix/store/cccccccccccccccccccccccccccccccc-customisation-layer',
    storeDir: '/nix/store',
    created: '1970-01-01T00:00:01+00:00',
    mtime: '1970-01-01T00:00:01+00:00',
    uid: 0,
    gid: 0,
    uname: 'root',
    gname: 'root',
    architecture: 'amd64',
    confText: '{"config": {}}',
  };

  it('keeps the gzip id (and so every gzip key) every earlier push wrote', () => {
    expect(compressorID()).toBe('gzip/pigz-blocks-1MiB/level-4/v1');
    expect(compressorID(gzip(6))).toBe('gzip/pigz-blocks-1MiB/level-6/v1');
    expect(planKeys(plan)).toEqual(planKeys(plan, gzip(4)));
  });

  it('names zstd, its level and the implementation that compresses here', () => {
    const id = compressorID(zstd(3));
    expect(id).toMatch(/^zstd\/frames-4MiB\/level-3\/checksum\/(node-libzstd|zstd-cli)-\d+\.\d+\.\d+\/v1$/);
    // This runtime's: Node's own library when node:zlib has zstd, else the zstd command.
    expect(id.includes('node-libzstd-')).toBe(typeof (zlib as { zstdCompress?: unknown }).zstdCompress === 'function');
    expect(nativeZstd()).toBe(id.includes('node-libzstd-'));
    expect(compressorID(zstd(9))).not.toBe(id);
  });

  it('gives every layer a key of its own per algorithm and level, so no key names another compression\'s blob', () => {
    const keys = [gzip(4), gzip(6), zstd(3), zstd(9)].map((c) => planKeys(plan, c));
    const all = keys.flat();
    expect(new Set(all).size).toBe(all.length);
    const tar = { mtime: 1, uid: 0, gid: 0, uname: 'root', gname: 'root', storeDir: '/nix/store' };
    expect(storeLayerKey(plan.storeLayers[0]!, tar, zstd())).toBe(keys[2]![0]);
    expect(customisationLayerKey(plan.customisationLayer, zstd())).toBe(keys[2]![2]);
  });

  it('changes the settings digest, so an image made one way is never re-tagged for a job of the other', () => {
    const settings = { labels: [['k', 'v']] as [string, string][] };
    expect(settingsDigest({ ...settings, compression: gzip(4) })).toBe(settingsDigest(settings));
    const digests = [gzip(4), gzip(6), zstd(3), zstd(9)].map((compression) => settingsDigest({ ...settings, compression }));
    expect(new Set(digests).size).toBe(4);
  });

  it('gives each algorithm its OCI media type; other layer types are never reused', () => {
    expect(layerMediaType('gzip')).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
    expect(layerMediaType('zstd')).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
    expect(pushedLayerType(MediaTypes.dockerLayerGzip)).toBe(MediaTypes.ociLayerGzip);
    expect(pushedLayerType(MediaTypes.ociLayerZstd)).toBe(MediaTypes.ociLayerZstd);
    expect(pushedLayerType('application/vnd.oci.image.layer.v1.tar')).toBeUndefined();
  });
});

describe('zstd and the zstd command', () => {
  // e2e/zstd.test.ts runs the bundled action on a Node without zstd in node:zlib, with and without the command.
  it("needs no command where Node has zstd; elsewhere, without it, fails in one line saying what is missing", () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      if (nativeZstd()) {
        // Node compresses itself: the PATH plays no part.
        expect(compressorID(zstd())).toMatch(/node-libzstd-/);
      } else {
        expect(() => compressorID(zstd())).toThrow(ZstdUnavailableError);
        expect(() => compressorID(zstd())).toThrow(/^compression zstd: Node v[\d.]+ has no zstd in node:zlib and no zstd command on PATH; run on Node 24 \(as the action does\) or install zstd$/);
      }
    } finally {
      process.env.PATH = path;
    }
    expect(compressorID(zstd())).toMatch(/^zstd\//);
  });
});
