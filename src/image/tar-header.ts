// Tar headers as Python's tarfile and GNU tar write them: ustar fields, pax extended records (x) and GNU
// long names (L, K), which set the name or link of the entry after them. Read by the archive walker
// (archive.ts, seeking past bodies in a file) and by TarNames (a stream, counting past bodies): both only
// look at headers, never copy a body.

/** Parses a tar number field: octal text, or base-256 when the high bit of the first byte is set. */
export function tarNumber(field: Buffer): number {
  if (field[0]! & 0x80) {
    let n = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i]!;
    return n;
  }
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  return text === '' ? 0 : parseInt(text, 8);
}

export function tarString(field: Buffer): string {
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? field.length : end).toString('utf8');
}

function paxRecords(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < body.length) {
    const space = body.indexOf(0x20, i);
    if (space < 0) break;
    const len = parseInt(body.subarray(i, space).toString('latin1'), 10);
    if (!(len > 0)) break;
    const record = body.subarray(space + 1, i + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    i += len;
  }
  return out;
}

/** An entry as its header (and the extended records before it) describe it. */
export interface TarEntry {
  name: string;
  linkname: string;
  /** The type flag: '0' file, '2' symlink, 'x' pax record, … */
  flag: string;
  /** Body bytes (without the padding to 512). */
  size: number;
}

/** Body bytes an entry occupies in the archive, padding included. */
export const paddedSize = (size: number): number => Math.ceil(size / 512) * 512;

/** The header state across entries: the pax and long-name records waiting for the entry they describe. */
export class TarHeaders {
  private pax: Record<string, string> = {};
  private longName?: string;
  private longLink?: string;

  /** Whether an entry's body is a record for the next entry (hand it to extend()). */
  static extends(flag: string): boolean {
    return flag === 'x' || flag === 'L' || flag === 'K';
  }

  /** The entry a 512-byte header block describes. Any entry but a record consumes the waiting records. */
  entry(header: Buffer): TarEntry {
    const flag = String.fromCharCode(header[156]!);
    // A pax size is the next real entry's: a record's own size is its header's.
    const size = this.pax.size !== undefined && !TarHeaders.extends(flag) ? Number(this.pax.size) : tarNumber(header.subarray(124, 136));
    const magic = header.subarray(257, 262).toString('latin1');
    const prefix = magic === 'ustar' ? tarString(header.subarray(345, 500)) : '';
    const name = this.longName ?? this.pax.path ?? (prefix ? `${prefix}/${tarString(header.subarray(0, 100))}` : tarString(header.subarray(0, 100)));
    const linkname = this.longLink ?? this.pax.linkpath ?? tarString(header.subarray(157, 257));
    if (!TarHeaders.extends(flag)) {
      this.pax = {};
      this.longName = undefined;
      this.longLink = undefined;
    }
    return { name, linkname, flag, size };
  }

  /** Takes the body of a record entry (x, L or K). */
  extend(flag: string, body: Buffer): void {
    if (flag === 'x') this.pax = paxRecords(body);
    else if (flag === 'L') this.longName = tarString(body);
    else if (flag === 'K') this.longLink = tarString(body);
  }
}

/** Records longer than this are not read (their entry keeps its header's own name). */
const MAX_RECORD = 1024 * 1024;

/**
 * The entries of a tar fed to it chunk by chunk, as they pass: headers parsed, bodies counted past (never
 * copied), up to the end-of-archive block. `onEntry` hears every entry but the records.
 */
export class TarNames {
  private readonly headers = new TarHeaders();
  private readonly block = Buffer.alloc(512);
  private fill = 0;
  /** Bytes still to pass before the next header. */
  private skip = 0;
  private record?: { flag: string; body: Buffer; fill: number; padding: number };
  private ended = false;

  constructor(private readonly onEntry: (entry: TarEntry) => void) {}

  write(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length && !this.ended) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        i += n;
        this.skip -= n;
      } else if (this.record) {
        const r = this.record;
        const n = Math.min(r.body.length - r.fill, chunk.length - i);
        chunk.copy(r.body, r.fill, i, i + n);
        r.fill += n;
        i += n;
        if (r.fill === r.body.length) {
          this.headers.extend(r.flag, r.body);
          this.skip = r.padding;
          this.record = undefined;
        }
      } else {
        const n = Math.min(512 - this.fill, chunk.length - i);
        chunk.copy(this.block, this.fill, i, i + n);
        this.fill += n;
        i += n;
        if (this.fill < 512) break;
        this.fill = 0;
        this.header();
      }
    }
  }

  private header(): void {
    if (this.block.every((b) => b === 0)) {
      this.ended = true;
      return;
    }
    const entry = this.headers.entry(this.block);
    const padded = paddedSize(entry.size);
    if (TarHeaders.extends(entry.flag) && entry.size <= MAX_RECORD) {
      if (entry.size === 0) this.headers.extend(entry.flag, Buffer.alloc(0));
      else this.record = { flag: entry.flag, body: Buffer.alloc(entry.size), fill: 0, padding: padded - entry.size };
      return;
    }
    if (!TarHeaders.extends(entry.flag)) this.onEntry(entry);
    this.skip = padded;
  }
}
