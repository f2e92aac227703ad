// Which way the image is made, decided from its derivation before anything big is built:
// - a recognised dockerTools streamLayeredImage / buildLayeredImage: only its conf is built (which builds
//   every store path it names), and image/ makes the layers from the store; the archive is never built;
// - anything else (buildImage, from_image images, hand-made archives, unknown conf shapes), or
//   layers-from: archive: the output is built and its archive read, as before.
// One log line says which way, and why.
import * as core from '@actions/core';
import type { LayersFrom } from '../inputs/index.js';
import { buildImageOutput, derivationOf, type BuildOptions, type BuildResult } from './build.js';
import { realisePlan, recogniseImage, type LayerPlan } from './dockertools.js';

export interface ResolvedImage {
  /** The image derivation, when it could be evaluated (the post step saves what its build made). */
  drvPath?: string;
  /** What import from derivation realised while evaluating it (the post step saves these too). */
  evaluated: string[];
  /** The image output's path: built for the archive way, only named for the plan way. */
  outPath: string;
  /** Set when the layers are made from the store. */
  plan?: LayerPlan;
  /** Set when the output was built: the archive (or stream script) to read. */
  built?: BuildResult;
  /** Plan of an image read through its archive anyway (layers-from: archive): its layer keys annotate it. */
  archivePlan?: LayerPlan;
  /** One line: which way, and why. */
  reason: string;
  seconds: number;
  /** Substituters Nix ignored because this user is not trusted (from the build's log). */
  ignoredSubstituters: string[];
}

export interface ResolveOptions extends BuildOptions {
  layersFrom: LayersFrom;
  /** The installable's derivation, when the caller evaluated it already. */
  drvPath?: string;
  /** Called with the derivation, and what its evaluation realised (import from derivation), as soon as
   *  they are known, so a failed build still saves its work. */
  onDerivation?: (drvPath: string, evaluated: string[]) => void;
  /** Whether the layers can be made exactly from this plan: undefined if so, else the reason why not
   *  (the image then takes the archive path). */
  checkPlan?: (plan: LayerPlan) => string | undefined;
}

export async function resolveImage(opts: ResolveOptions): Promise<ResolvedImage> {
  const started = Date.now();
  const evaluation = opts.drvPath ? { drvPath: opts.drvPath, realised: [] } : await derivationOf(opts);
  const { drvPath, realised: evaluated } = evaluation;
  if (drvPath) opts.onDerivation?.(drvPath, evaluated);
  let plan: LayerPlan | undefined;
  let ignored: string[] = [];
  let reason = 'the installable could not be evaluated to a derivation without building';
  if (drvPath) {
    const recognised = await recogniseImage(drvPath);
    reason = recognised.reason;
    if (recognised.image) {
      const realised = await realisePlan(recognised.image, opts.nix, opts.env, opts.onLine);
      reason = realised.reason;
      plan = realised.plan;
      ignored = realised.ignoredSubstituters;
      const refused = plan ? opts.checkPlan?.(plan) : undefined;
      if (refused) {
        reason = `the layers cannot be made exactly from the plan: ${refused}`;
        plan = undefined;
      }
    }
  }
  if (plan && opts.layersFrom === 'auto') {
    core.info(`image: layers made from the store, the archive is not built (${reason})`);
    return { drvPath, evaluated, outPath: plan.image.outPath, plan, reason, seconds: (Date.now() - started) / 1000, ignoredSubstituters: ignored };
  }
  const why = plan ? `layers-from: archive (${reason})` : reason;
  core.info(`image: building the output and reading its archive: ${why}`);
  const built = await buildImageOutput(opts);
  return {
    drvPath: built.drvPath,
    evaluated,
    outPath: built.storePath,
    built,
    ...(plan ? { archivePlan: plan } : {}),
    reason: why,
    seconds: (Date.now() - started) / 1000,
    ignoredSubstituters: [...new Set([...ignored, ...built.ignoredSubstituters])],
  };
}

/**
 * The derivation that fixes the pushed image's bytes: for a recognised dockerTools layered image its conf
 * (the same whether `attr` names the stream script, the .tar.gz or the .tar, as the pushed image is), for
 * anything else the image derivation itself. Read from .drv files only: nothing is built.
 */
export async function imageDerivation(drvPath: string): Promise<string> {
  const recognised = await recogniseImage(drvPath);
  return recognised.image?.confDrv ?? drvPath;
}
