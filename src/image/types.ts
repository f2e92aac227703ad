// Shared shapes of an image as read from a Nix build output.
import type { Readable } from 'node:stream';

/** How the build output holds the image. */
export type ImageFormat =
  | 'docker-archive' // uncompressed .tar (compressor = "none")
  | 'docker-archive+gzip' // .tar.gz (buildLayeredImage / buildImage default)
  | 'docker-archive+zstd' // .tar.zst (compressor = "zstd")
  | 'stream'; // streamLayeredImage: an executable writing the archive to stdout

export interface ImageSource {
  format: ImageFormat;
  /** The file to read (the store path itself, or the file inside it when the output is a directory). */
  path: string;
}

/** One entry of the archive's manifest.json. */
export interface ArchiveManifest {
  config: string;
  layers: string[];
  repoTags: string[];
}

export interface ImageConfig {
  /** The config exactly as found in the archive: its bytes are the blob we push. */
  bytes: Buffer;
  /** sha256:<hex> of bytes. */
  digest: string;
  /** rootfs.diff_ids, in order. */
  diffIDs: string[];
}

/** The archive's metadata: what the push needs to plan before it reads any layer body. */
export interface ImageMetadata {
  manifest: ArchiveManifest;
  config: ImageConfig;
  /** Layer entries that are links to another entry: link name → target name. */
  aliases?: Record<string, string>;
}

/** A layer.tar entry as it comes out of the archive. */
export interface LayerEntry {
  /** Path inside the archive, e.g. "<hex>/layer.tar". */
  name: string;
  /** Bytes of the uncompressed layer tar. */
  size: number;
  /** sha256:<hex> when the entry's directory name is a sha256 (streamLayeredImage / buildLayeredImage). */
  diffIDHint?: string;
  /** The archive is a plain file: the layer can be read again, any time, straight from it. */
  seekable: boolean;
}

/** A layer compressed for upload, held in a temporary file (never in memory). */
export interface CompressedLayer {
  /** sha256:<hex> of the uncompressed tar (checked against the config's diff_id by the caller). */
  diffID: string;
  /** sha256:<hex> of the gzip stream: the blob digest. */
  digest: string;
  /** Bytes of the gzip stream. */
  size: number;
  uncompressedSize: number;
  /** Temporary file holding the gzip stream; the caller removes it. */
  file: string;
}

export type LayerBody = Readable;
