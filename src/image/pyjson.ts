// JSON as CPython's json module sees it: parsePythonJson keeps what json.load(f) keeps (object key order,
// a repeated key keeping its first place and its last value, ints of any size, floats as floats, NaN and
// Infinity), and dumpsIndent4 writes what json.dumps(value, indent=4) writes (ensure_ascii: every UTF-16
// code unit outside space..~ as \uXXXX in lowercase hex, the short escapes \" \\ \n \r \t \b \f,
// separators ",\n" and ": ", "[]" and "{}" when empty, int repr, float repr). Rules from CPython 3.11's
// Lib/json (scanner.py NUMBER_RE, decoder.py, encoder.py) and float_repr_style 'short'. Whatever Python
// would refuse, or that we cannot reproduce exactly, throws UnsupportedImageError.
import { UnsupportedImageError } from './store-layer.js';

/** A JSON number kept as its source text: an int (no fraction, no exponent) or a float, as Python reads it. */
export class JsonNumber {
  constructor(readonly lexeme: string) {}
  /** True for what Python's json reads as int. */
  get isInteger(): boolean {
    return /^-?\d+$/.test(this.lexeme);
  }
  /** The exact value of an int; throws for a float. */
  toBigInt(): bigint {
    if (!this.isInteger) throw new UnsupportedImageError(`${this.lexeme} is a float, not an int`);
    return BigInt(this.lexeme);
  }
  /** The value as a JS number (a float's value; an int's when it is a safe integer, else throws). */
  toNumber(): number {
    if (!this.isInteger) return Number(this.lexeme);
    const n = Number(this.lexeme);
    if (!Number.isSafeInteger(n)) throw new UnsupportedImageError(`${this.lexeme} is too large for a JS number`);
    return n === 0 ? 0 : n;
  }
  /** What Python's json.dumps writes for it: int repr, or float repr (NaN, Infinity, -Infinity for those). */
  toPython(): string {
    return this.isInteger ? BigInt(this.lexeme).toString() : pyFloatRepr(Number(this.lexeme));
  }
}

/** A JSON object; a Map keeps Python dict order (insertion; a repeated key keeps its first place). */
export type JsonObject = Map<string, JsonValue>;
export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | JsonObject;

export function isJsonObject(v: JsonValue | undefined): v is JsonObject {
  return v instanceof Map;
}

/** CPython refuses to convert ints longer than this (sys.int_info.default_max_str_digits, 3.11+). */
const MAX_INT_DIGITS = 4300;

/** Parse JSON text as Python's json.loads does (the text is what json.load read from the file). */
export function parsePythonJson(text: string): JsonValue {
  const p = new Parser(text);
  p.ws();
  const v = p.value();
  p.ws();
  if (p.i !== text.length) p.fail('extra data');
  return v;
}

class Parser {
  i = 0;
  constructor(readonly s: string) {}

  fail(what: string): never {
    throw new UnsupportedImageError(`JSON not read as Python would: ${what} at offset ${this.i}`);
  }

  ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.i++;
      else break;
    }
  }

  value(): JsonValue {
    const s = this.s;
    const c = s[this.i];
    if (c === '"') return this.string();
    if (c === '{') return this.object();
    if (c === '[') return this.array();
    if (s.startsWith('null', this.i)) return (this.i += 4), null;
    if (s.startsWith('true', this.i)) return (this.i += 4), true;
    if (s.startsWith('false', this.i)) return (this.i += 5), false;
    if (s.startsWith('NaN', this.i)) return (this.i += 3), new JsonNumber('NaN');
    if (s.startsWith('Infinity', this.i)) return (this.i += 8), new JsonNumber('Infinity');
    if (s.startsWith('-Infinity', this.i)) return (this.i += 9), new JsonNumber('-Infinity');
    const m = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?/y;
    m.lastIndex = this.i;
    const r = m.exec(s);
    if (!r) this.fail('expecting value');
    this.i += r[0].length;
    if (r[1] === undefined && r[2] === undefined && r[0].replace('-', '').length > MAX_INT_DIGITS) this.fail('int too long for Python');
    return new JsonNumber(r[0]);
  }

  object(): JsonObject {
    const s = this.s;
    const out: JsonObject = new Map();
    this.i++;
    this.ws();
    if (s[this.i] === '}') return this.i++, out;
    for (;;) {
      if (s[this.i] !== '"') this.fail('expecting property name');
      const key = this.string();
      this.ws();
      if (s[this.i] !== ':') this.fail("expecting ':'");
      this.i++;
      this.ws();
      out.set(key, this.value());
      this.ws();
      if (s[this.i] === ',') {
        this.i++;
        this.ws();
        continue;
      }
      if (s[this.i] === '}') return this.i++, out;
      this.fail("expecting ',' or '}'");
    }
  }

  array(): JsonValue[] {
    const s = this.s;
    const out: JsonValue[] = [];
    this.i++;
    this.ws();
    if (s[this.i] === ']') return this.i++, out;
    for (;;) {
      out.push(this.value());
      this.ws();
      if (s[this.i] === ',') {
        this.i++;
        this.ws();
        continue;
      }
      if (s[this.i] === ']') return this.i++, out;
      this.fail("expecting ',' or ']'");
    }
  }

  hex4(at: number): number {
    const h = this.s.slice(at, at + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) this.fail('invalid \\uXXXX escape');
    return parseInt(h, 16);
  }

  // Python's scanstring (strict): no raw control characters; \u escapes of a high then a low surrogate
  // make one character, which in a JS string is the same pair of code units, so the text is kept as is.
  string(): string {
    const s = this.s;
    let out = '';
    let start = ++this.i;
    for (;;) {
      if (this.i >= s.length) this.fail('unterminated string');
      const c = s.charCodeAt(this.i);
      if (c === 0x22) {
        out += s.slice(start, this.i);
        this.i++;
        return out;
      }
      if (c < 0x20) this.fail('invalid control character in string');
      if (c !== 0x5c) {
        this.i++;
        continue;
      }
      out += s.slice(start, this.i);
      const e = s[this.i + 1];
      const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
      if (e !== undefined && e in simple) {
        out += simple[e];
        this.i += 2;
      } else if (e === 'u') {
        out += String.fromCharCode(this.hex4(this.i + 2));
        this.i += 6;
      } else this.fail('invalid escape');
      start = this.i;
    }
  }
}

/** Python's float.__repr__ (shortest round-trip digits; exponent form when exp < -4 or exp >= 16). */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  // toExponential() without an argument gives the shortest digits that round-trip, as Python's repr does.
  const [mant, expText] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mant.replace('.', '');
  const exp = Number(expText);
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp).toString().padStart(2, '0');
    return `${sign}${m}e${exp < 0 ? '-' : '+'}${e}`;
  }
  const point = exp + 1; // digits before the decimal point
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}.0`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** A string as json.dumps writes it with ensure_ascii=True. */
export function pyJsonString(s: string): string {
  let out = '"';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c <= 0x7e && c !== 0x22 && c !== 0x5c) continue;
    out += s.slice(start, i);
    start = i + 1;
    switch (c) {
      case 0x22: out += '\\"'; break;
      case 0x5c: out += '\\\\'; break;
      case 0x0a: out += '\\n'; break;
      case 0x0d: out += '\\r'; break;
      case 0x09: out += '\\t'; break;
      case 0x08: out += '\\b'; break;
      case 0x0c: out += '\\f'; break;
      default: out += `\\u${c.toString(16).padStart(4, '0')}`;
    }
  }
  return `${out}${s.slice(start)}"`;
}

/** json.dumps(value, indent=4) (default separators, ensure_ascii, no key sorting). */
export function dumpsIndent4(value: JsonValue): string {
  const parts: string[] = [];
  write(value, 0, parts);
  return parts.join('');
}

function write(v: JsonValue, level: number, out: string[]): void {
  if (v === null) out.push('null');
  else if (v === true) out.push('true');
  else if (v === false) out.push('false');
  else if (typeof v === 'string') out.push(pyJsonString(v));
  else if (v instanceof JsonNumber) out.push(v.toPython());
  else if (Array.isArray(v)) {
    if (v.length === 0) return void out.push('[]');
    const inner = '\n' + ' '.repeat(4 * (level + 1));
    out.push('[');
    v.forEach((item, i) => {
      out.push(i === 0 ? inner : ',' + inner);
      write(item, level + 1, out);
    });
    out.push('\n' + ' '.repeat(4 * level) + ']');
  } else {
    if (v.size === 0) return void out.push('{}');
    const inner = '\n' + ' '.repeat(4 * (level + 1));
    out.push('{');
    let first = true;
    for (const [k, item] of v) {
      out.push(first ? inner : ',' + inner);
      first = false;
      out.push(pyJsonString(k), ': ');
      write(item, level + 1, out);
    }
    out.push('\n' + ' '.repeat(4 * level) + '}');
  }
}
