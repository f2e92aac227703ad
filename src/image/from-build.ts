// What the push reads, from what the build made: the layers of a recognised dockerTools plan, made from
// the store, or the archive the output holds (the plan's layer keys annotating it when there is one).
import { detectSource } from './format.js';
import { archiveInput } from './input.js';
import { labelled } from './labels.js';
import type { Compression } from './compress.js';
import { planInput, planKeys, UnsupportedImageError, type StorePlan } from './plan.js';
import type { ImageInput, ImageSource } from './types.js';

/** What the build gave: a plan whose layers are made here, or an output whose archive is read. */
export interface BuiltImage {
  outPath: string;
  plan?: StorePlan;
  /** The plan of an image read through its archive anyway (layers-from: archive). */
  archivePlan?: StorePlan;
}

export interface ImageToPush {
  input: ImageInput;
  /** How the layers are read: `layers from the store`, or the archive's format. */
  format: string;
  /** The archive read (absent: the layers are made from the store). */
  source?: ImageSource;
}

/** Why the layers of `plan` cannot be made here exactly, or undefined when they can. */
export function planRefusal(plan: StorePlan): string | undefined {
  try {
    planInput(plan);
    return undefined;
  } catch (error) {
    if (error instanceof UnsupportedImageError) return error.message;
    throw error;
  }
}

/** `compression` is the push's: every layer key names it. `scanStorePaths`: the layers of an archive
 *  list their store paths, for the SBOM, as the push reads them (archiveInput). */
export async function imageToPush(built: BuiltImage, labels: [string, string][], compression?: Compression, opts: { scanStorePaths?: boolean } = {}): Promise<ImageToPush> {
  if (built.plan) return { input: labelled(planInput(built.plan, { compression }), labels), format: 'layers from the store' };
  const source = await detectSource(built.outPath);
  // A recognised image read through its archive: its manifest is the plan's own, keys included.
  const keys = built.archivePlan && !planRefusal(built.archivePlan) ? planKeys(built.archivePlan, compression) : undefined;
  return { input: labelled(archiveInput(source, { keys, scanStorePaths: opts.scanStorePaths }), labels), format: source.format, source };
}
