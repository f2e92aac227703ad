// Recognises nixpkgs dockerTools layered images from their derivations, before anything big is built,
// and reads their layer plan (the stream script's JSON conf) as data:
// - streamLayeredImage: `runCommand "stream-<name>"` whose command is `makeWrapper <script> $out
//   --add-flags <conf>`: <script> is nixpkgs' stream_layered_image.py (writePython3 "stream"), <conf> the
//   output of the `<name>-conf.json` derivation;
// - buildLayeredImage (and compressor = "none" / "zstd"): a derivation whose command (runCommand's
//   `buildCommand`, or the `-c` argument of its builder) is `<stream> | <compressor> > $out` or
//   `<stream> > $out`, <stream> being a recognised streamLayeredImage.
// Everything is verified from the derivations' structure (which input derivation makes which path, the
// script's source and what it does, the conf's exact key set and types), never from names alone. Anything
// else (buildImage, a from_image base, a conf or script shape not known here) gets a reason and keeps the
// archive path. Only the conf is built (which builds every store path it names), never the archive.
import { lstat, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { realiseDerivation } from './build.js';
import type { StorePlan } from '../image/types.js';
import { readDerivation, type Derivation } from './derivation.js';
import { nixOutput, nixStoreBinary } from './store.js';

export interface RecognisedImage {
  /** The derivation `attr` evaluates to, and its output. */
  drvPath: string;
  outPath: string;
  /** stream: the attr is the stream script; archive: a derivation piping it into `$out`. */
  kind: 'stream' | 'archive';
  /** For the archive kind: what the stream is piped into (cat, pigz -nTR, zstd …), for the log. */
  compressor?: string;
  streamDrv: string;
  confDrv: string;
  confPath: string;
  /** The stream_layered_image.py source the script runs. */
  script: string;
}

/** A dockerTools image as data (image/'s StorePlan), with what recognised it. */
export interface LayerPlan extends StorePlan {
  image: RecognisedImage;
}

export interface Recognition {
  image?: RecognisedImage;
  /** Why this way: what was recognised, or why not. */
  reason: string;
}

const STORE_PATH = /^(\/[^\s'"\\]+)\/[0-9a-z]{32}-[A-Za-z0-9+\-._?=]+$/;
const PIPE = /^(\S+)\s*\|\s*((?:cat|pigz|gzip|zstd)(?:\s+[-\w$={}]+)*)\s*>\s*"?\$\{?out\}?"?$/;
const REDIRECT = /^(\S+)\s*>\s*"?\$\{?out\}?"?$/;
const WRAPPER = /^makeWrapper\s+(\S+)\s+"?\$\{?out\}?"?\s+--add-flags\s+(\S+)$/;

/**
 * What decides the bytes nixpkgs' stream_layered_image.py writes, as the statements that do it, in every
 * release whose conf has the shape accepted below: Python's tarfile in stream mode, each store path walked
 * with rglob, hardlinks copied as regular files (the first release wrote them empty), times and ownership
 * read from the conf (older releases took mtime from `created` and wrote root), the config written by
 * json.dumps with indent 4 and history comments naming the store paths. A script lacking one of them
 * writes something else: the image keeps the archive path.
 */
const SCRIPT_MARKERS: [RegExp, string][] = [
  [/^\s*import\s+tarfile\b/m, 'import tarfile'],
  [/tarfile\.open\([^)]*mode\s*=\s*"w\|"/, 'layer tars written by tarfile.open(mode="w|")'],
  [/\.rglob\(\s*"\*"\s*\)/, 'store paths walked with rglob("*")'],
  [/\bsorted\(/, 'entries sorted'],
  [/\.islnk\(\)[\s\S]{0,300}tarfile\.REGTYPE/, 'hardlinks copied as regular files'],
  ...['store_layers', 'customisation_layer', 'mtime', 'uid', 'gid', 'uname', 'gname', 'store_dir', 'created', 'architecture', 'config'].map(
    (k): [RegExp, string] => [new RegExp(`conf\\[\\s*"${k}"\\s*\\]`), `conf["${k}"] read`],
  ),
  [/json\.dumps\([^)]*indent\s*=\s*4/, 'the config written by json.dumps(indent=4)'],
  [/store paths: \{/, 'history comments "store paths: [...]"'],
];

/** Conf keys of the releases accepted here: nixpkgs from mid-2024 on (uid/gid/uname/gname came in April
 *  2024, mtime in July 2024); `os` appears in some and the script ignores it. */
const CONF_KEYS = ['architecture', 'config', 'store_dir', 'from_image', 'store_layers', 'customisation_layer', 'repo_tag', 'created', 'mtime', 'uid', 'gid', 'uname', 'gname'];
const CONF_OPTIONAL = ['os'];

/** The command a runCommand-style derivation runs: its `buildCommand`, or the `-c` argument of its builder. */
function commandOf(drv: Derivation): string | undefined {
  if (drv.env.buildCommand !== undefined) return drv.env.buildCommand;
  if (drv.env.__json !== undefined) {
    // __structuredAttrs: every attribute is in one JSON document.
    try {
      const attrs = JSON.parse(drv.env.__json) as { buildCommand?: unknown };
      if (typeof attrs.buildCommand === 'string') return attrs.buildCommand;
    } catch {
      return undefined;
    }
  }
  const c = drv.args.indexOf('-c');
  return c >= 0 ? drv.args[c + 1] : undefined;
}

/** A command token: a literal store path, or `$var` / `${var}` naming one in the derivation's environment. */
function resolveToken(token: string, drv: Derivation): string {
  const unquoted = token.replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1');
  const ref = /^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$/.exec(unquoted);
  return ref ? (drv.env[ref[1]!] ?? '') : unquoted;
}

/** The input derivation of `drv` one of whose outputs is `path`. */
async function producerOf(drv: Derivation, path: string): Promise<Derivation | undefined> {
  for (const [input, outs] of Object.entries(drv.inputDrvs)) {
    const d = await readDerivation(input).catch(() => undefined);
    if (d && outs.some((o) => d.outputs[o] === path)) return d;
  }
  return undefined;
}

function singleLine(command: string): string | undefined {
  const lines = command.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  return lines.length === 1 ? lines[0] : undefined;
}

export function missingMarkers(script: string): string[] {
  return SCRIPT_MARKERS.filter(([re]) => !re.test(script)).map(([, what]) => what);
}

/** The stream_layered_image.py source behind a writePython3 "stream" derivation (or one level below it). */
async function scriptSource(drv: Derivation): Promise<string | undefined> {
  const isSource = (p: string) => /^[0-9a-z]{32}-stream_layered_image\.py$/.test(basename(p));
  const direct = drv.inputSrcs.find(isSource);
  if (direct) return direct;
  for (const input of Object.keys(drv.inputDrvs)) {
    const d = await readDerivation(input).catch(() => undefined);
    const found = d?.inputSrcs.find(isSource);
    if (found) return found;
  }
  return undefined;
}

type Step<T> = { ok: T } | { reason: string };

async function recogniseStream(drv: Derivation): Promise<Step<Omit<RecognisedImage, 'drvPath' | 'outPath' | 'kind' | 'compressor'>>> {
  const command = commandOf(drv);
  const line = command === undefined ? undefined : singleLine(command);
  const m = line ? WRAPPER.exec(line) : null;
  if (!m) return { reason: `${drv.env.name ?? drv.path} is not a streamLayeredImage wrapper (makeWrapper <script> $out --add-flags <conf>)` };
  const scriptPath = resolveToken(m[1]!, drv);
  const confPath = resolveToken(m[2]!, drv);
  const scriptDrv = await producerOf(drv, scriptPath);
  const confDrv = await producerOf(drv, confPath);
  if (!scriptDrv || !confDrv) return { reason: `the wrapper's script and conf are not outputs of its input derivations` };
  if (!/-conf\.json$/.test(confDrv.env.name ?? '')) return { reason: `the wrapper's flags are not a dockerTools conf (${confDrv.env.name ?? confDrv.path})` };
  const source = await scriptSource(scriptDrv);
  if (!source) return { reason: `the wrapper's script ${scriptPath} is not made from nixpkgs' stream_layered_image.py` };
  let text: string;
  try {
    text = await readFile(source, 'utf8');
  } catch {
    return { reason: `the script source ${source} is not in the store` };
  }
  const missing = missingMarkers(text);
  if (missing.length > 0) return { reason: `${source} is a stream_layered_image.py this action does not know (it lacks: ${missing.join('; ')})` };
  return { ok: { streamDrv: drv.path, confDrv: confDrv.path, confPath, script: source } };
}

/** Recognises the image derivation, reading only .drv files and the script source (nothing is built). */
export async function recogniseImage(drvPath: string): Promise<Recognition> {
  let drv: Derivation;
  try {
    drv = await readDerivation(drvPath);
  } catch (e) {
    return { reason: `cannot read the derivation ${drvPath}: ${(e as Error).message}` };
  }
  const outPath = drv.outputs.out ?? '';
  const name = drv.env.name ?? basename(drvPath);
  const command = commandOf(drv);
  const line = command === undefined ? undefined : singleLine(command);
  if (line && WRAPPER.test(line)) {
    const s = await recogniseStream(drv);
    if ('reason' in s) return s;
    return { image: { drvPath, outPath, kind: 'stream', ...s.ok }, reason: `${name} is a dockerTools streamLayeredImage` };
  }
  const piped = line ? (PIPE.exec(line) ?? REDIRECT.exec(line)) : null;
  if (!piped) return { reason: `${name} is not a dockerTools layered image (no stream script piped into $out)` };
  const streamPath = resolveToken(piped[1]!, drv);
  const streamDrv = await producerOf(drv, streamPath);
  if (!streamDrv) return { reason: `${name} pipes ${streamPath}, which none of its input derivations makes` };
  const s = await recogniseStream(streamDrv);
  if ('reason' in s) return s;
  const compressor = piped[2]?.trim() ?? 'none';
  return {
    image: { drvPath, outPath, kind: 'archive', compressor, ...s.ok },
    reason: `${name} is a dockerTools buildLayeredImage (the stream ${basename(streamPath)} piped into ${compressor})`,
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks a conf (as JSON.parse reads it) against the shape accepted; returns why not, or the plan. */
export function planFromConf(confText: string, image: RecognisedImage): Step<LayerPlan> {
  let conf: unknown;
  try {
    conf = JSON.parse(confText);
  } catch {
    return { reason: `the conf ${image.confPath} is not JSON` };
  }
  if (!isObject(conf)) return { reason: 'the conf is not a JSON object' };
  const keys = Object.keys(conf);
  const unknown = keys.filter((k) => !CONF_KEYS.includes(k) && !CONF_OPTIONAL.includes(k));
  const absent = CONF_KEYS.filter((k) => !keys.includes(k));
  if (unknown.length || absent.length) {
    return { reason: `the conf has a shape this action does not know (${[unknown.length ? `unknown: ${unknown.join(', ')}` : '', absent.length ? `missing: ${absent.join(', ')}` : ''].filter(Boolean).join('; ')})` };
  }
  if (conf.from_image !== null) return { reason: 'the image has a fromImage base, whose layers come from its archive' };
  const storeDir = conf.store_dir;
  if (typeof storeDir !== 'string' || !storeDir.startsWith('/')) return { reason: 'the conf has no valid store_dir' };
  const inStore = (p: unknown): p is string => typeof p === 'string' && STORE_PATH.exec(p)?.[1] === storeDir;
  const layers = conf.store_layers;
  if (!Array.isArray(layers) || !layers.every((l) => Array.isArray(l) && l.length > 0 && l.every(inStore))) {
    return { reason: `the conf's store_layers are not lists of store paths under ${storeDir}` };
  }
  if (!inStore(conf.customisation_layer)) return { reason: 'the conf has no valid customisation_layer' };
  // nixpkgs passes uid and gid with `jq --arg`, so they are strings the script reads with int().
  const ids: Record<string, number> = {};
  for (const k of ['uid', 'gid']) {
    const v = conf[k];
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^[0-9]{1,10}$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || n < 0) return { reason: `the conf's ${k} is not a whole number: ${JSON.stringify(v)}` };
    ids[k] = n;
  }
  for (const k of ['uname', 'gname', 'architecture', 'created', 'mtime']) if (typeof conf[k] !== 'string') return { reason: `the conf's ${k} is not a string` };
  if (!isObject(conf.config)) return { reason: "the conf's config is not an object" };
  return {
    ok: {
      image,
      storeLayers: layers as string[][],
      customisationLayer: conf.customisation_layer,
      storeDir,
      created: conf.created as string,
      mtime: conf.mtime as string,
      uid: ids.uid!,
      gid: ids.gid!,
      uname: conf.uname as string,
      gname: conf.gname as string,
      architecture: conf.architecture as string,
      confText,
    },
  };
}

export interface RealiseResult {
  plan?: LayerPlan;
  reason: string;
  seconds: number;
  /** Substituters Nix ignored because this user is not trusted. */
  ignoredSubstituters: string[];
}

/**
 * Builds the conf derivation (and with it every store path it names: the conf is made from their
 * closure), reads it and checks what it names is in the store. The archive is never built.
 */
export async function realisePlan(image: RecognisedImage, nix: string, env: NodeJS.ProcessEnv, onLine?: (line: string) => void): Promise<RealiseResult> {
  const started = Date.now();
  const seconds = () => (Date.now() - started) / 1000;
  const store = nixStoreBinary(nix);
  const built = await realiseDerivation({ nix, env, ...(onLine ? { onLine } : {}) }, image.confDrv, `the image's conf ${basename(image.confDrv)}`);
  const confPath = built.outPaths.at(-1) ?? image.confPath;
  const confText = await readFile(confPath, 'utf8');
  const step = planFromConf(confText, { ...image, confPath });
  if ('reason' in step) return { reason: step.reason, seconds: seconds(), ignoredSubstituters: built.ignoredSubstituters };
  const plan = step.ok;
  const needed = [...new Set([...plan.storeLayers.flat(), plan.customisationLayer])];
  const absent: string[] = [];
  for (const p of needed) if (!(await lstat(p).then(() => true, () => false))) absent.push(p);
  if (absent.length > 0) await nixOutput(store, ['--realise', ...absent], env);
  for (const f of ['layer.tar', 'checksum']) {
    const ok = await stat(join(plan.customisationLayer, f)).then((s) => s.isFile(), () => false);
    if (!ok) return { reason: `the customisation layer ${plan.customisationLayer} has no ${f}`, seconds: seconds(), ignoredSubstituters: built.ignoredSubstituters };
  }
  const kind = image.kind === 'stream' ? 'streamLayeredImage' : `buildLayeredImage (${image.compressor})`;
  return {
    plan,
    reason: `${basename(image.drvPath, '.drv')} is a dockerTools ${kind}: ${plan.storeLayers.length} store layers and the customisation layer, from ${basename(confPath)}`,
    seconds: seconds(),
    ignoredSubstituters: built.ignoredSubstituters,
  };
}

/**
 * The derivation that fixes every byte of the image pushed from `drvPath`, read from .drv files only
 * (nothing is built): for a recognised layered image whose layers are made from the store, its conf (the
 * same whether `attr` names the stream script, the .tar.gz or the .tar, as the pushed image is); for an
 * image whose archive is read (not recognised, or layers-from: archive), the image derivation itself, which
 * fixes the stream script as well as the conf.
 */
export async function producerDerivation(drvPath: string, layersFrom: 'auto' | 'archive'): Promise<string> {
  if (layersFrom === 'archive') return drvPath;
  const recognised = await recogniseImage(drvPath);
  return recognised.image?.confDrv ?? drvPath;
}
