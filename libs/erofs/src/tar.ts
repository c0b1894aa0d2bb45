// A strict streaming tar reader: ustar, pax (binary-safe, incl. SCHILY.xattr.* and
// LIBARCHIVE.xattr.*), GNU long names/links and base-256 numbers. Header-only entry types ignore their
// size field, as Go's archive/tar (and so Docker and containerd) do. Paths stay raw bytes (latin1
// strings); interpreting them is the caller's job.
import { ByteSource } from './byte-source';
import { EntryProblem } from './errors';

export type TarEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'chardev' | 'blockdev' | 'fifo';

export interface TarEntry {
  type: TarEntryType;
  /** Raw path bytes as a latin1 string. */
  path: string;
  linkPath: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  mtimeNsec: number;
  size: number;
  devMajor: number;
  devMinor: number;
  /** Full xattr names (latin1 byte strings) and raw values. */
  xattrs: Map<string, Buffer>;
}

const BLOCK = 512;
/** Go's archive/tar bound for pax and GNU long-name payloads; anything bigger is hostile. */
export const MAX_META_SIZE = 1 << 20;
/**
 * Pax records merge (xattrs accumulate) and any number of metadata headers may precede an entry:
 * what one entry's headers add up to has the same bound as one of them, and real writers emit at
 * most a few (a global header, pax, GNU long name and link).
 */
const MAX_META_HEADERS = 16;

const padding = (n: number): number => (BLOCK - (n % BLOCK)) % BLOCK;

interface PaxOverrides {
  path?: string;
  linkPath?: string;
  size?: number;
  uid?: number;
  gid?: number;
  mtime?: { sec: number; nsec: number };
  devMajor?: number;
  devMinor?: number;
  xattrs: Map<string, Buffer>;
}

export class TarReader {
  private readonly src: ByteSource;
  private bodyLeft = 0;
  private bodyPad = 0;
  private finished = false;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.src = new ByteSource(source);
  }

  /** The next entry, or null after the end-of-archive marker. Skips any unread body of the previous one. */
  async next(): Promise<TarEntry | null> {
    if (this.finished) return null;
    await this.src.skip(this.bodyLeft + this.bodyPad);
    this.bodyLeft = this.bodyPad = 0;

    let pax: PaxOverrides = { xattrs: new Map() };
    let longName: string | undefined;
    let longLink: string | undefined;
    const meta = { headers: 0, bytes: 0 };
    for (;;) {
      const h = await this.src.readExact(BLOCK);
      // A stream that stops at a header boundary without the zero-block marker is as likely to be cut
      // short as complete, so it is refused.
      if (!h) throw new EntryProblem('archive ends without an end-of-archive marker (truncated?)');
      if (isZero(h)) {
        this.finished = true;
        await this.src.drain();
        return null;
      }
      verifyChecksum(h);
      const flag = String.fromCharCode(h[156]);
      const size = parseNumber(h, 124, 12, 'size');
      if (size < 0) throw new EntryProblem('negative entry size');
      if ('xgLK'.includes(flag) && ++meta.headers > MAX_META_HEADERS)
        throw new EntryProblem(`more than ${MAX_META_HEADERS} metadata headers before one entry`);
      switch (flag) {
        case 'x':
          pax = mergePax(pax, parsePax(await this.readMeta(size, 'pax header', meta)));
          continue;
        case 'g':
          // Global pax headers are ignored, as containerd does; they only ever carry comments in practice.
          await this.src.skip(size + padding(size));
          continue;
        case 'L':
          longName = cString(await this.readMeta(size, 'GNU long name', meta));
          continue;
        case 'K':
          longLink = cString(await this.readMeta(size, 'GNU long link name', meta));
          continue;
      }

      const ustar = h.toString('latin1', 257, 263) === 'ustar\0';
      let name = cString(h.subarray(0, 100));
      if (ustar) {
        const prefix = cString(h.subarray(345, 500));
        if (prefix) name = `${prefix}/${name}`;
      }
      const path = pax.path ?? longName ?? name;
      const linkPath = pax.linkPath ?? longLink ?? cString(h.subarray(157, 257));
      const type = entryType(flag, path);
      const headerOnly = type !== 'file';
      const dataSize = pax.size ?? size;
      const mtime = pax.mtime ?? { sec: parseNumber(h, 136, 12, 'mtime'), nsec: 0 };
      const entry: TarEntry = {
        type,
        path,
        linkPath,
        mode: parseNumber(h, 100, 8, 'mode') & 0o7777,
        uid: pax.uid ?? parseNumber(h, 108, 8, 'uid'),
        gid: pax.gid ?? parseNumber(h, 116, 8, 'gid'),
        mtime: mtime.sec,
        mtimeNsec: mtime.nsec,
        size: headerOnly ? 0 : dataSize,
        devMajor: pax.devMajor ?? (type === 'chardev' || type === 'blockdev' ? parseNumber(h, 329, 8, 'devmajor') : 0),
        devMinor: pax.devMinor ?? (type === 'chardev' || type === 'blockdev' ? parseNumber(h, 337, 8, 'devminor') : 0),
        xattrs: pax.xattrs,
      };
      if (entry.uid < 0 || entry.gid < 0) throw new EntryProblem('negative uid/gid');
      if (path.length === 0) throw new EntryProblem('entry has an empty name');
      if ((type === 'symlink' || type === 'hardlink') && linkPath.length === 0)
        throw new EntryProblem(`${type} has an empty target`);
      // GNU dumpdir entries carry a listing as data; it is skipped like any unread body.
      const bodySize = flag === 'D' ? dataSize : entry.size;
      this.bodyLeft = bodySize;
      this.bodyPad = padding(bodySize);
      return entry;
    }
  }

  /** Streams the current entry's body. Chunks are views that are only valid during the call. */
  async readBody(onChunk: (chunk: Buffer) => void): Promise<void> {
    const n = this.bodyLeft;
    this.bodyLeft = 0;
    await this.src.forward(n, onChunk);
  }

  async close(): Promise<void> {
    await this.src.close();
  }

  private async readMeta(size: number, what: string, meta: { bytes: number }): Promise<Buffer> {
    if (size > MAX_META_SIZE)
      throw new EntryProblem(`${what} of ${size} bytes exceeds the ${MAX_META_SIZE}-byte limit`);
    meta.bytes += size;
    if (meta.bytes > MAX_META_SIZE)
      throw new EntryProblem(`the metadata headers of one entry exceed ${MAX_META_SIZE} bytes together`);
    const data = (await this.src.readExact(size)) ?? Buffer.alloc(0);
    if (data.length !== size) throw new EntryProblem('archive is truncated');
    // Views into the stream are only valid until the next read: keep a copy.
    const copy = Buffer.from(data);
    await this.src.skip(padding(size));
    return copy;
  }
}

function entryType(flag: string, path: string): TarEntryType {
  switch (flag) {
    case '0':
    case '7':
      return 'file';
    case '\0':
      // Pre-POSIX archives mark directories only by a trailing slash.
      return path.endsWith('/') ? 'dir' : 'file';
    case '1':
      return 'hardlink';
    case '2':
      return 'symlink';
    case '3':
      return 'chardev';
    case '4':
      return 'blockdev';
    case '5':
    case 'D':
      return 'dir';
    case '6':
      return 'fifo';
    case 'S':
      throw new EntryProblem('GNU sparse files are not supported');
    default:
      throw new EntryProblem(`unsupported tar entry type '${printable(flag)}'`);
  }
}

const printable = (s: string): string =>
  s.replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);

function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i += 8) if (b.readBigUInt64LE(i) !== 0n) return false;
  return true;
}

function verifyChecksum(h: Buffer): void {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : h[i];
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  const stored = parseOctal(h, 148, 8, 'checksum');
  // Some old writers summed signed chars; Go accepts either, so do we.
  if (stored !== unsigned && stored !== signed)
    throw new EntryProblem('tar header checksum mismatch (corrupt or not a tar archive)');
}

function cString(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.toString('latin1', 0, nul < 0 ? b.length : nul);
}

/** A numeric header field: octal text, or GNU base-256 when the high bit of the first byte is set. */
function parseNumber(h: Buffer, off: number, len: number, what: string): number {
  if (h[off] & 0x80) {
    let v = BigInt(h[off] & 0x7f);
    const negative = h[off] === 0xff;
    if (negative) v = 0xffn;
    for (let i = 1; i < len; i++) v = (v << 8n) | BigInt(h[off + i]);
    if (negative) v = v - (1n << BigInt(len * 8));
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER))
      throw new EntryProblem(`${what} field out of range`);
    return Number(v);
  }
  return parseOctal(h, off, len, what);
}

function parseOctal(h: Buffer, off: number, len: number, what: string): number {
  const s = h
    .toString('latin1', off, off + len)
    .replace(/^[ \0]+/, '')
    .replace(/[ \0].*$/s, '');
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new EntryProblem(`invalid ${what} field in tar header`);
  const v = parseInt(s, 8);
  if (!Number.isSafeInteger(v)) throw new EntryProblem(`${what} field out of range`);
  return v;
}

// ---- pax

type PaxRecords = Array<[string, Buffer]>;

/** Splits pax records ("<len> <key>=<value>\n") without decoding values: xattr values are binary. */
export function parsePax(data: Buffer): PaxRecords {
  const out: PaxRecords = [];
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) {
      // Some writers NUL-pad the payload.
      if (data.subarray(pos).every((c) => c === 0)) break;
    }
    const sp = data.indexOf(0x20, pos);
    if (sp < 0 || sp - pos > 12) throw new EntryProblem('malformed pax record length');
    const lenText = data.toString('latin1', pos, sp);
    if (!/^[0-9]+$/.test(lenText)) throw new EntryProblem('malformed pax record length');
    const len = Number(lenText);
    if (len < sp - pos + 3 || pos + len > data.length) throw new EntryProblem('pax record length out of bounds');
    const rec = data.subarray(sp + 1, pos + len);
    if (rec[rec.length - 1] !== 0x0a) throw new EntryProblem('pax record is not newline-terminated');
    const eq = rec.indexOf(0x3d);
    if (eq < 1) throw new EntryProblem('malformed pax record');
    out.push([rec.toString('latin1', 0, eq), rec.subarray(eq + 1, rec.length - 1)]);
    pos += len;
  }
  return out;
}

function mergePax(into: PaxOverrides, records: PaxRecords): PaxOverrides {
  for (const [key, value] of records) {
    const text = value.toString('latin1');
    // An empty value deletes the keyword, so the ustar field applies again.
    const set = <K extends keyof PaxOverrides>(k: K, v: PaxOverrides[K] | undefined): void => {
      if (text === '') delete into[k];
      else into[k] = v as PaxOverrides[K];
    };
    if (key === 'path') set('path', text);
    else if (key === 'linkpath') set('linkPath', text);
    else if (key === 'size') set('size', text === '' ? undefined : paxInt(text, key));
    else if (key === 'uid') set('uid', text === '' ? undefined : paxInt(text, key));
    else if (key === 'gid') set('gid', text === '' ? undefined : paxInt(text, key));
    else if (key === 'mtime') set('mtime', text === '' ? undefined : paxTime(text));
    else if (key === 'SCHILY.devmajor') set('devMajor', text === '' ? undefined : paxInt(text, key));
    else if (key === 'SCHILY.devminor') set('devMinor', text === '' ? undefined : paxInt(text, key));
    else if (key.startsWith('SCHILY.xattr.')) into.xattrs.set(key.slice('SCHILY.xattr.'.length), Buffer.from(value));
    else if (key.startsWith('LIBARCHIVE.xattr.')) {
      into.xattrs.set(percentDecode(key.slice('LIBARCHIVE.xattr.'.length)), Buffer.from(text, 'base64'));
    } else if (key.startsWith('GNU.sparse.')) throw new EntryProblem('GNU sparse files are not supported');
    // Everything else (atime, ctime, uname, gname, charset, comment, ...) does not reach the image.
  }
  return into;
}

/** libarchive %XX-escapes xattr names; the result is a byte string like every other name here. */
function percentDecode(s: string): string {
  return s.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

function paxInt(text: string, key: string): number {
  if (!/^[0-9]+$/.test(text)) throw new EntryProblem(`invalid pax ${key} '${printable(text.slice(0, 40))}'`);
  const v = Number(text);
  if (!Number.isSafeInteger(v)) throw new EntryProblem(`pax ${key} out of range`);
  return v;
}

/** "secs[.fraction]", possibly negative, into whole seconds (floored) and nanoseconds. */
function paxTime(text: string): { sec: number; nsec: number } {
  const m = /^(-?)([0-9]+)(?:\.([0-9]*))?$/.exec(text);
  if (!m) throw new EntryProblem(`invalid pax mtime '${printable(text.slice(0, 40))}'`);
  let sec = Number(m[2]);
  let nsec = Number((m[3] ?? '').slice(0, 9).padEnd(9, '0'));
  if (!Number.isSafeInteger(sec)) throw new EntryProblem('pax mtime out of range');
  if (m[1] === '-') {
    sec = -sec;
    if (nsec > 0) {
      sec -= 1;
      nsec = 1_000_000_000 - nsec;
    }
  }
  return { sec, nsec };
}
