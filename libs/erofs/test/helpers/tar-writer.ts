// Test-only tar writer: enough control to produce every entry type, pax xattrs with binary values,
// long names (pax or GNU), base-256 numbers and deliberately broken headers.
export type TarType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'chardev' | 'blockdev' | 'fifo';

const FLAG: Record<TarType, string> = {
  file: '0',
  dir: '5',
  symlink: '2',
  hardlink: '1',
  chardev: '3',
  blockdev: '4',
  fifo: '6',
};

export interface TarSpec {
  path: string;
  type?: TarType;
  /** Raw typeflag override (for unsupported/malicious types). */
  flag?: string;
  content?: Buffer | string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  mtimeNsec?: number;
  linkPath?: string;
  devMajor?: number;
  devMinor?: number;
  xattrs?: Record<string, Buffer | string>;
  /** How to carry a path longer than 100 bytes. Default pax. */
  longNames?: 'pax' | 'gnu';
  /** Extra raw pax records. */
  pax?: Array<[string, Buffer | string]>;
  /** Declared size in the header when it should differ from the content (malicious tests). */
  declaredSize?: number;
  /** Write size/uid/gid in GNU base-256 form. */
  base256?: boolean;
}

const BLOCK = 512;

function octal(buf: Buffer, off: number, len: number, value: number): void {
  const s = value.toString(8).padStart(len - 1, '0');
  if (s.length > len - 1) throw new Error(`value ${value} does not fit ${len}-byte octal field`);
  buf.write(s + '\0', off, len, 'latin1');
}

function base256(buf: Buffer, off: number, len: number, value: number): void {
  let v = BigInt(value);
  for (let i = len - 1; i > 0; i--) {
    buf[off + i] = Number(v & 0xffn);
    v >>= 8n;
  }
  buf[off] = 0x80;
}

export function paxRecord(key: string, value: Buffer | string): Buffer {
  const v = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  const k = Buffer.from(key, 'utf8');
  const base = 1 + k.length + 1 + v.length + 1;
  let len = base + 1;
  while (String(len).length + base !== len) len = String(len).length + base;
  return Buffer.concat([Buffer.from(`${len} `), k, Buffer.from('='), v, Buffer.from('\n')]);
}

export interface HeaderFields {
  name: Buffer | string;
  flag: string;
  size: number;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkName?: Buffer | string;
  devMajor?: number;
  devMinor?: number;
  base256?: boolean;
  prefix?: string;
  magic?: 'ustar' | 'gnu' | 'v7';
}

export function header(f: HeaderFields): Buffer {
  const h = Buffer.alloc(BLOCK);
  const name = typeof f.name === 'string' ? Buffer.from(f.name, 'utf8') : f.name;
  name.copy(h, 0, 0, Math.min(100, name.length));
  octal(h, 100, 8, f.mode ?? 0o644);
  if (f.base256) {
    base256(h, 108, 8, f.uid ?? 0);
    base256(h, 116, 8, f.gid ?? 0);
    base256(h, 124, 12, f.size);
  } else {
    octal(h, 108, 8, f.uid ?? 0);
    octal(h, 116, 8, f.gid ?? 0);
    octal(h, 124, 12, f.size);
  }
  octal(h, 136, 12, f.mtime ?? 0);
  h.write(f.flag, 156, 1, 'latin1');
  if (f.linkName !== undefined) {
    const l = typeof f.linkName === 'string' ? Buffer.from(f.linkName, 'utf8') : f.linkName;
    l.copy(h, 157, 0, Math.min(100, l.length));
  }
  const magic = f.magic ?? 'ustar';
  if (magic === 'ustar') h.write('ustar\x0000', 257, 8, 'latin1');
  else if (magic === 'gnu') h.write('ustar  \x00', 257, 8, 'latin1');
  if (magic !== 'v7') {
    octal(h, 329, 8, f.devMajor ?? 0);
    octal(h, 337, 8, f.devMinor ?? 0);
  }
  if (f.prefix) h.write(f.prefix, 345, 155, 'utf8');
  return withChecksum(h);
}

export function withChecksum(h: Buffer): Buffer {
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const c of h) sum += c;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return h;
}

function padded(data: Buffer): Buffer {
  const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
  return Buffer.concat([data, Buffer.alloc(pad)]);
}

export function entryBlocks(e: TarSpec): Buffer[] {
  const out: Buffer[] = [];
  const type = e.type ?? 'file';
  const content =
    e.content === undefined
      ? Buffer.alloc(0)
      : typeof e.content === 'string'
        ? Buffer.from(e.content, 'utf8')
        : e.content;
  const pathBytes = Buffer.from(e.path, 'utf8');
  const linkBytes = Buffer.from(e.linkPath ?? '', 'utf8');
  const records: Buffer[] = [];
  let name: Buffer = pathBytes;
  let linkName: Buffer = linkBytes;
  if (pathBytes.length > 100) {
    if (e.longNames === 'gnu') {
      const body = Buffer.concat([pathBytes, Buffer.alloc(1)]);
      out.push(header({ name: '././@LongLink', flag: 'L', size: body.length }), padded(body));
    } else records.push(paxRecord('path', pathBytes));
    name = pathBytes.subarray(0, 100);
  }
  if (linkBytes.length > 100) {
    if (e.longNames === 'gnu') {
      const body = Buffer.concat([linkBytes, Buffer.alloc(1)]);
      out.push(header({ name: '././@LongLink', flag: 'K', size: body.length }), padded(body));
    } else records.push(paxRecord('linkpath', linkBytes));
    linkName = linkBytes.subarray(0, 100);
  }
  const uid = e.uid ?? 0;
  const gid = e.gid ?? 0;
  if (!e.base256 && uid > 0o7777777) records.push(paxRecord('uid', String(uid)));
  if (!e.base256 && gid > 0o7777777) records.push(paxRecord('gid', String(gid)));
  if (e.mtimeNsec) records.push(paxRecord('mtime', `${e.mtime ?? 0}.${String(e.mtimeNsec).padStart(9, '0')}`));
  for (const [k, v] of Object.entries(e.xattrs ?? {}))
    records.push(paxRecord(`SCHILY.xattr.${k}`, typeof v === 'string' ? Buffer.from(v) : v));
  for (const [k, v] of e.pax ?? []) records.push(paxRecord(k, v));
  if (records.length) {
    const body = Buffer.concat(records);
    out.push(header({ name: 'PaxHeaders/x', flag: 'x', size: body.length }), padded(body));
  }
  out.push(
    header({
      name,
      flag: e.flag ?? FLAG[type],
      size: e.declaredSize ?? (type === 'file' ? content.length : 0),
      mode: e.mode ?? (type === 'dir' ? 0o755 : 0o644),
      uid: !e.base256 && uid > 0o7777777 ? 0 : uid,
      gid: !e.base256 && gid > 0o7777777 ? 0 : gid,
      mtime: e.mtime ?? 0,
      linkName,
      devMajor: e.devMajor,
      devMinor: e.devMinor,
      base256: e.base256,
    }),
  );
  if (type === 'file' && content.length) out.push(padded(content));
  return out;
}

export function makeTar(entries: TarSpec[], opts: { end?: 'full' | 'one' | 'none' } = {}): Buffer {
  const parts = entries.flatMap(entryBlocks);
  const end = opts.end ?? 'full';
  if (end !== 'none') parts.push(Buffer.alloc(end === 'full' ? BLOCK * 2 : BLOCK));
  return Buffer.concat(parts);
}
