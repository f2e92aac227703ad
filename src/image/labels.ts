// Labels from the `labels` input, merged into the image config's `config.Labels`: a label already there
// keeps its place and takes the new value, a new one is added after the others, in input order. Without
// labels the config is left byte for byte as it was (the image stays dockerTools' own); with labels it is
// written as json.dumps(indent=4) writes it, like dockerTools' own configs. Only the config changes: the
// layers, their diff ids and their keys do not.
import { dumpsIndent4, isJsonObject, parsePythonJson, type JsonObject } from './pyjson.js';
import type { ImageInput } from './types.js';

export function withLabels(configBytes: Buffer, labels: [string, string][]): Buffer {
  if (labels.length === 0) return configBytes;
  const root = parsePythonJson(configBytes.toString('utf8'));
  if (!isJsonObject(root)) throw new Error('the image config is not a JSON object');
  let config = root.get('config');
  if (!isJsonObject(config)) {
    config = new Map() as JsonObject;
    root.set('config', config);
  }
  let current = config.get('Labels');
  if (!isJsonObject(current)) {
    current = new Map() as JsonObject;
    config.set('Labels', current);
  }
  for (const [k, v] of labels) current.set(k, v);
  return Buffer.from(dumpsIndent4(root), 'utf8');
}

/** The same image input, its config carrying the labels. */
export function labelled(input: ImageInput, labels: [string, string][]): ImageInput {
  if (labels.length === 0) return input;
  return {
    description: `${input.description}, with ${labels.length} label(s)`,
    async readLayers(visit) {
      const listing = await input.readLayers(visit);
      // storePaths read through: an archive's may fill in after this returns (as its layers' reads end).
      return {
        order: listing.order,
        config: (diffIDs) => withLabels(listing.config(diffIDs), labels),
        ...(listing.keys ? { keys: listing.keys } : {}),
        get storePaths() {
          return listing.storePaths;
        },
      };
    },
  };
}
