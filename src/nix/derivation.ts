// Reads a store derivation (`/nix/store/…drv`) straight from its ATerm text, the format every Nix since
// 1.x writes: `Derive([outputs],[input drvs],[input srcs],"system","builder",[args],[env])`. Reading the
// file needs no Nix command, so it behaves the same on Nix 2.8 and 2.3x (whose `nix derivation show`
// JSON changed shape over the releases).
import { readFile } from 'node:fs/promises';

export interface Derivation {
  path: string;
  /** Output name → store path ("" for a content-addressed output not yet known). */
  outputs: Record<string, string>;
  /** Input derivation → the outputs of it this one uses. */
  inputDrvs: Record<string, string[]>;
  inputSrcs: string[];
  system: string;
  builder: string;
  args: string[];
  env: Record<string, string>;
}

export class DerivationParseError extends Error {
  override name = 'DerivationParseError';
}

type Term = string | Term[];

/** Parses the ATerm subset derivations use: strings, lists `[…]`, tuples `(…)` and the `Derive(…)` head. */
function parseTerm(text: string, where: string): Term {
  let i = 0;
  const fail = (what: string): never => {
    throw new DerivationParseError(`${where}: not a derivation (${what} at byte ${i})`);
  };
  const value = (): Term => {
    const c = text[i];
    if (c === '"') {
      i++;
      let out = '';
      for (;;) {
        const j = text.indexOf('"', i);
        const k = text.indexOf('\\', i);
        if (j < 0) fail('unterminated string');
        if (k >= 0 && k < j) {
          out += text.slice(i, k);
          const e = text[k + 1];
          out += e === 'n' ? '\n' : e === 'r' ? '\r' : e === 't' ? '\t' : (e ?? '');
          i = k + 2;
          continue;
        }
        out += text.slice(i, j);
        i = j + 1;
        return out;
      }
    }
    if (c === '[' || c === '(') {
      const close = c === '[' ? ']' : ')';
      i++;
      const items: Term[] = [];
      if (text[i] === close) {
        i++;
        return items;
      }
      for (;;) {
        items.push(value());
        if (text[i] === ',') i++;
        else if (text[i] === close) {
          i++;
          return items;
        } else fail(`expected , or ${close}`);
      }
    }
    return fail(`unexpected ${JSON.stringify(c ?? 'end')}`);
  };
  if (!text.startsWith('Derive(')) fail('no Derive( head');
  i = 'Derive'.length;
  const term = value();
  if (i !== text.length && text.slice(i).trim() !== '') fail('trailing text');
  return term;
}

const strings = (t: Term | undefined, where: string): string[] => {
  if (!Array.isArray(t) || !t.every((s) => typeof s === 'string')) throw new DerivationParseError(`${where}: malformed list`);
  return t as string[];
};

export function parseDerivation(text: string, path: string): Derivation {
  const t = parseTerm(text, path);
  if (!Array.isArray(t) || t.length !== 7) throw new DerivationParseError(`${path}: a derivation has 7 fields, found ${Array.isArray(t) ? t.length : 0}`);
  const [outs, drvs, srcs, system, builder, args, env] = t;
  const outputs: Record<string, string> = {};
  for (const o of (outs as Term[]) ?? []) {
    const [name, out] = strings(o, path);
    outputs[name!] = out ?? '';
  }
  const inputDrvs: Record<string, string[]> = {};
  for (const d of (drvs as Term[]) ?? []) {
    if (!Array.isArray(d) || typeof d[0] !== 'string') throw new DerivationParseError(`${path}: malformed input derivation`);
    inputDrvs[d[0]] = Array.isArray(d[1]) ? strings(d[1], path) : [];
  }
  const vars: Record<string, string> = {};
  for (const e of (env as Term[]) ?? []) {
    const [k, v] = strings(e, path);
    vars[k!] = v ?? '';
  }
  if (typeof system !== 'string' || typeof builder !== 'string') throw new DerivationParseError(`${path}: malformed system or builder`);
  return { path, outputs, inputDrvs, inputSrcs: strings(srcs, path), system, builder, args: strings(args, path), env: vars };
}

export async function readDerivation(path: string): Promise<Derivation> {
  return parseDerivation(await readFile(path, 'utf8'), path);
}
