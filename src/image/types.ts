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

/**
 * One layer as the push sees it, whatever made it (an archive entry, or a layer plan read from a
 * derivation): what is known of it before a byte is read, and whether it can be opened at any time.
 */
export interface LayerSource {
  /** For logs: the archive entry ("<hex>/layer.tar") or the plan's "layer N". */
  name: string;
  /** What fixes the layer's bytes (store paths, tar parameters, maker and compressor versions), when known
   *  before reading it: recorded as an annotation on the layer in the pushed manifest. */
  key?: string;
  /** The diff id, when known without reading the layer (archive directory name, customisation checksum).
   *  Only a hint: a layer that is read is hashed, and the push compares the hash with the config. */
  diffIDHint?: string;
  /** The store paths the layer holds, when known (the plan, or the archive config's history comment). */
  storePaths?: string[];
  /** May be opened any time, also after the visitor returned, and several at once. Otherwise `open` may be
   *  called once, and the stream must be read before the visitor's promise resolves. */
  seekable: boolean;
}

export type LayerSourceVisitor = (layer: LayerSource, open: () => Readable) => Promise<void>;

/** What the push needs, after every layer was visited, to put the image together. */
export interface LayerListing {
  /** Layer names in the order of the image config's diff ids (aliases resolved). */
  order: string[];
  /** The config blob for these diff ids (one per `order` entry). An archive's config is returned as found,
   *  after checking that it names exactly these diff ids; a plan's config is made from them. */
  config(diffIDs: string[]): Buffer;
  /** Per `order` entry: the key to annotate the layer with in the manifest (see LayerSource.key). */
  keys?: (string | undefined)[];
  /** Per `order` entry: the store paths the layer holds, where known. Read once every layer's read has
   *  ended (an archive's fill in as the push's reads of its layers end, which may be after readLayers). */
  storePaths?: (string[] | undefined)[];
}

/** An image the push can read: an archive in the store, or layers made from a plan. */
export interface ImageInput {
  /** One line for the log: where the layers come from. */
  description: string;
  /** Visits every layer once (in the input's own order), then lists them in config order. */
  readLayers(visit: LayerSourceVisitor): Promise<LayerListing>;
}

/**
 * A dockerTools layered image as data, the conf's values as its stream script reads them: nix/ reads it
 * from the image's derivation, image/ makes each layer and the config from it (and may still refuse a
 * value it cannot reproduce exactly, e.g. a time it cannot parse).
 */
export interface StorePlan {
  storeLayers: string[][];
  customisationLayer: string;
  storeDir: string;
  /** As the conf has them: ISO times ("now" included), ownership. */
  created: string;
  mtime: string;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  architecture: string;
  /** The conf's text: its `config` member is written back into the image config exactly as Python reads it. */
  confText: string;
}
