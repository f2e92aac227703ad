// The image config ("<sha256>.json") nixpkgs' stream_layered_image.py writes, byte for byte, for an image
// without fromImage: {created, architecture, os: "linux", config, rootfs: {diff_ids, type: "layers"},
// history: [{created, comment: "store paths: " + repr(paths)} per layer]}, serialized with
// json.dumps(image_json, indent=4) and encoded as UTF-8 (see pyjson.ts for the JSON rules). Times follow
// CPython 3.11's datetime: created is isoformat(fromisoformat(conf.created)), the layer mtime is
// int(fromisoformat(conf.mtime).timestamp()). We accept the ISO forms nixpkgs users write
// (YYYY-MM-DD[T ]HH:MM:SS[.f{1,6}] then Z or ±HH:MM); "now", naive times and any other form throw
// UnsupportedImageError, as do store paths whose repr() is not plain printable ASCII.
import { UnsupportedImageError } from './store-layer.js';
import { dumpsIndent4, JsonNumber, parsePythonJson, type JsonObject, type JsonValue } from './pyjson.js';

export { dumpsIndent4, isJsonObject, JsonNumber, parsePythonJson, pyFloatRepr, type JsonObject, type JsonValue } from './pyjson.js';

/** What the config is made of: the conf's fields (config exactly as parsed) and the layers' store paths. */
export interface ConfigSource {
  created: string;
  architecture: string;
  config: JsonValue;
  storeLayers: string[][];
  /** The customisation layer's store path (its history entry names it). */
  customisationLayer: string;
}

/** Python's repr() of a str, for the printable-ASCII strings store paths are. */
export function pyStrRepr(s: string): string {
  if (!/^[\x20-\x7e]*$/.test(s)) throw new UnsupportedImageError(`cannot reproduce Python's repr() of ${JSON.stringify(s)}`);
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = s.replace(/\\/g, '\\\\');
  if (quote === "'") out = out.replace(/'/g, "\\'");
  return quote + out + quote;
}

/** Python's repr() of a list of str: "['a', 'b']". */
export function pyListRepr(items: string[]): string {
  return `[${items.map(pyStrRepr).join(', ')}]`;
}

const ISO = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:\d{2})$/;

function daysInMonth(y: number, m: number): number {
  if (m === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(m) ? 30 : 31;
}

/** Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil). */
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/**
 * datetime.fromisoformat(value), then its isoformat() and int(timestamp()), for the forms we accept.
 * Throws UnsupportedImageError for "now", naive times and anything else.
 */
export function parseTime(value: string): { iso: string; epochSeconds: number } {
  if (value === 'now') throw new UnsupportedImageError('the time "now" is only known when the stream script runs');
  const r = ISO.exec(value);
  if (!r) throw new UnsupportedImageError(`time ${JSON.stringify(value)} is not in a form we reproduce (YYYY-MM-DDTHH:MM:SS[.ffffff] with Z or ±HH:MM)`);
  const [, Y, M, D, h, m, s, frac, tz] = r as unknown as [string, string, string, string, string, string, string, string | undefined, string];
  const [year, month, day, hour, minute, second] = [Y, M, D, h, m, s].map(Number) as [number, number, number, number, number, number];
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 59) {
    throw new UnsupportedImageError(`time ${JSON.stringify(value)} is not a valid date and time`);
  }
  const micro = frac === undefined ? 0 : Number(frac.padEnd(6, '0'));
  let offsetSeconds = 0;
  let offsetText = '+00:00';
  if (tz !== 'Z') {
    const oh = Number(tz.slice(1, 3));
    const om = Number(tz.slice(4, 6));
    if (oh > 23 || om > 59) throw new UnsupportedImageError(`time ${JSON.stringify(value)} has an invalid UTC offset`);
    offsetSeconds = (tz[0] === '-' ? -1 : 1) * (oh * 3600 + om * 60);
    // isoformat writes a zero offset as +00:00, whichever sign it was given with.
    offsetText = offsetSeconds === 0 ? '+00:00' : tz;
  }
  const iso = `${Y}-${M}-${D}T${h}:${m}:${s}${micro ? '.' + String(micro).padStart(6, '0') : ''}${offsetText}`;
  const seconds = daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offsetSeconds;
  if (micro === 0) return { iso, epochSeconds: seconds };
  // timestamp() is total microseconds / 10**6, correctly rounded to a float, then int() truncates toward
  // zero. Below 2**53 µs both operands are exact doubles, so one IEEE division rounds as Python does.
  const totalMicros = BigInt(seconds) * 1_000_000n + BigInt(micro);
  if (totalMicros > 2n ** 53n || totalMicros < -(2n ** 53n)) throw new UnsupportedImageError(`time ${JSON.stringify(value)} is too far from 1970 to reproduce its float timestamp`);
  return { iso, epochSeconds: Math.trunc(Number(totalMicros) / 1e6) || 0 };
}

/** The config bytes; diffIDs are the store layers' then the customisation layer's, as "sha256:<hex>". */
export function imageConfigBytes(src: ConfigSource, diffIDs: string[]): Buffer {
  if (diffIDs.length !== src.storeLayers.length + 1) throw new Error(`expected ${src.storeLayers.length + 1} diff ids, got ${diffIDs.length}`);
  for (const d of diffIDs) if (!/^sha256:[0-9a-f]{64}$/.test(d)) throw new Error(`not a sha256 diff id: ${d}`);
  const created = parseTime(src.created).iso;
  const layerPaths = [...src.storeLayers, [src.customisationLayer]];
  const image: JsonObject = new Map<string, JsonValue>([
    ['created', created],
    ['architecture', src.architecture],
    ['os', 'linux'],
    ['config', src.config],
    ['rootfs', new Map<string, JsonValue>([['diff_ids', [...diffIDs]], ['type', 'layers']])],
    ['history', layerPaths.map((paths) => new Map<string, JsonValue>([['created', created], ['comment', `store paths: ${pyListRepr(paths)}`]]))],
  ]);
  return Buffer.from(dumpsIndent4(image), 'utf8');
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** json.load of a conf file's bytes (read as UTF-8, as the script's open(conf, "r") does in a UTF-8 locale). */
export function parseConfBytes(bytes: Uint8Array): JsonValue {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new UnsupportedImageError('the conf is not valid UTF-8');
  }
  if (text.startsWith('\ufeff')) throw new UnsupportedImageError('the conf starts with a BOM, which json.load refuses');
  return parsePythonJson(text);
}

/** A conf number that Python's json read as an int (uid, gid), as a JS number; anything else is refused. */
export function pyInt(v: JsonValue | undefined): number {
  if (v instanceof JsonNumber && v.isInteger) return v.toNumber();
  throw new UnsupportedImageError(`expected an int, got ${v instanceof JsonNumber ? v.lexeme : JSON.stringify(v)}`);
}
