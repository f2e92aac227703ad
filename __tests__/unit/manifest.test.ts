import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildOciManifest, knownLayers } from '../../src/registry/manifest.js';
import { sha256Digest } from '../../src/hash.js';
import { limiter } from '../../src/registry/limit.js';
import { MediaTypes } from '../../src/registry/types.js';

const d = (c: string) => `sha256:${c.repeat(64)}`;

describe('buildOciManifest', () => {
  it('writes an OCI manifest whose digest is the sha256 of its exact bytes', () => {
    const m = buildOciManifest({ mediaType: MediaTypes.ociConfig, digest: d('c'), size: 10 }, [
      { mediaType: MediaTypes.ociLayerGzip, digest: d('1'), size: 100 },
      { mediaType: MediaTypes.ociLayerGzip, digest: d('2'), size: 200 },
    ]);
    expect(m.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(m.digest).toBe(`sha256:${createHash('sha256').update(m.bytes).digest('hex')}`);
    expect(JSON.parse(m.bytes.toString())).toEqual({
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      config: { mediaType: MediaTypes.ociConfig, digest: d('c'), size: 10 },
      layers: [
        { mediaType: MediaTypes.ociLayerGzip, digest: d('1'), size: 100 },
        { mediaType: MediaTypes.ociLayerGzip, digest: d('2'), size: 200 },
      ],
    });
  });

  it('is reproducible', () => {
    const make = () => buildOciManifest({ mediaType: MediaTypes.ociConfig, digest: d('c'), size: 1 }, []);
    expect(make().bytes.equals(make().bytes)).toBe(true);
    expect(sha256Digest('')).toBe('sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
});

/** What knownLayers found, as diff id → descriptor pairs. */
const layersByDiffID = (manifestBytes: Buffer, configBytes: Buffer) => new Map(knownLayers(manifestBytes, configBytes).map((l) => [l.diffID, l.desc]));

describe('knownLayers', () => {
  const manifest = (mediaType: string) =>
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        config: { mediaType: MediaTypes.dockerConfig, digest: d('c'), size: 5 },
        layers: [
          { mediaType, digest: d('1'), size: 11 },
          { mediaType, digest: d('2'), size: 22 },
        ],
      }),
    );
  const config = Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: [d('a'), d('b')] } }));

  it('maps each diff id to its gzip blob, from OCI or Docker manifests', () => {
    for (const type of [MediaTypes.ociLayerGzip, MediaTypes.dockerLayerGzip]) {
      const found = layersByDiffID(manifest(type), config);
      expect([...found]).toEqual([
        [d('a'), { mediaType: MediaTypes.ociLayerGzip, digest: d('1'), size: 11 }],
        [d('b'), { mediaType: MediaTypes.ociLayerGzip, digest: d('2'), size: 22 }],
      ]);
    }
  });

  it('keeps a zstd layer as zstd, so only a zstd push takes it', () => {
    expect([...layersByDiffID(manifest(MediaTypes.ociLayerZstd), config)]).toEqual([
      [d('a'), { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', digest: d('1'), size: 11 }],
      [d('b'), { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', digest: d('2'), size: 22 }],
    ]);
  });

  it('reuses nothing from layers it could not describe the same way, or from broken documents', () => {
    expect(layersByDiffID(manifest('application/vnd.oci.image.layer.v1.tar'), config).size).toBe(0);
    expect(layersByDiffID(manifest('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip'), config).size).toBe(0);
    expect(layersByDiffID(Buffer.from('{'), config).size).toBe(0);
    const short = Buffer.from(JSON.stringify({ rootfs: { diff_ids: [d('a')] } }));
    expect(layersByDiffID(manifest(MediaTypes.ociLayerGzip), short).size).toBe(0);
  });
});

describe('limiter', () => {
  it('never runs more than n tasks at once and runs them all', async () => {
    const limit = limiter(2);
    let active = 0;
    let peak = 0;
    const results = await Promise.all(
      [1, 2, 3, 4, 5].map((i) =>
        limit(async () => {
          active++;
          peak = Math.max(peak, active);
          await new Promise((r) => setTimeout(r, 5));
          active--;
          return i * 10;
        }),
      ),
    );
    expect(results).toEqual([10, 20, 30, 40, 50]);
    expect(peak).toBe(2);
  });
});
