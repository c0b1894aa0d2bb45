import { TarReader, parsePax, type TarEntry } from '../src/tar';
import { header, makeTar, paxRecord, withChecksum } from './helpers/tar-writer';

async function* chunked(b: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

async function readAll(tar: Buffer, chunk = 1000): Promise<Array<TarEntry & { body: string }>> {
  const r = new TarReader(chunked(tar, chunk));
  const out: Array<TarEntry & { body: string }> = [];
  for (let e = await r.next(); e; e = await r.next()) {
    const parts: Buffer[] = [];
    await r.readBody((c) => parts.push(Buffer.from(c)));
    out.push({ ...e, body: Buffer.concat(parts).toString('latin1') });
  }
  return out;
}

const end = Buffer.alloc(1024);
const pad = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);

describe('TarReader', () => {
  test.each([1, 7, 511, 512, 513, 100000])('reads bodies correctly with %i-byte chunks', async (chunk) => {
    const tar = makeTar([
      { path: 'a', content: 'x'.repeat(1000) },
      { path: 'b', content: '' },
      { path: 'c', content: Buffer.alloc(70000, 0x5a) },
    ]);
    const got = await readAll(tar, chunk);
    expect(got.map((e) => [e.path, e.body.length])).toEqual([
      ['a', 1000],
      ['b', 0],
      ['c', 70000],
    ]);
    expect(got[2].body).toBe('Z'.repeat(70000));
  });

  test('unread bodies are skipped', async () => {
    const r = new TarReader(
      chunked(
        makeTar([
          { path: 'a', content: 'x'.repeat(5000) },
          { path: 'b', content: 'y' },
        ]),
        300,
      ),
    );
    expect((await r.next())?.path).toBe('a');
    expect((await r.next())?.path).toBe('b');
    expect(await r.next()).toBeNull();
  });

  test('ustar prefix field joins the name', async () => {
    const body = Buffer.from('p');
    const tar = Buffer.concat([header({ name: 'file', prefix: 'deep/prefix', flag: '0', size: 1 }), pad(body), end]);
    expect((await readAll(tar))[0].path).toBe('deep/prefix/file');
    // GNU magic has no prefix field: the bytes there must not become part of the name.
    const gnu = Buffer.concat([
      header({ name: 'file', prefix: 'ignored', flag: '0', size: 1, magic: 'gnu' }),
      pad(body),
      end,
    ]);
    expect((await readAll(gnu))[0].path).toBe('file');
  });

  test('pax records: binary values, deletion by empty value, precedence over GNU long names', async () => {
    const records = Buffer.concat([
      paxRecord('path', 'from-pax'),
      paxRecord('SCHILY.xattr.user.bin', Buffer.from([0, 10, 0x3d, 0xff])),
      paxRecord('LIBARCHIVE.xattr.user.%41b', Buffer.from('aGk=')),
      paxRecord('uid', ''),
      paxRecord('mtime', '-1.25'),
      paxRecord('SCHILY.devmajor', '12'),
      paxRecord('SCHILY.devminor', '345'),
      paxRecord('atime', '1.5'),
    ]);
    const longName = Buffer.from('from-gnu\0');
    const tar = Buffer.concat([
      header({ name: '././@LongLink', flag: 'L', size: longName.length }),
      pad(longName),
      header({ name: 'pax', flag: 'x', size: records.length }),
      pad(records),
      header({ name: 'short', flag: '3', size: 0, uid: 77 }),
      end,
    ]);
    const [e] = await readAll(tar);
    expect(e.path).toBe('from-pax');
    expect(e.type).toBe('chardev');
    expect(e.uid).toBe(77);
    expect([e.mtime, e.mtimeNsec]).toEqual([-2, 750_000_000]);
    expect([e.devMajor, e.devMinor]).toEqual([12, 345]);
    expect(e.xattrs.get('user.bin')).toEqual(Buffer.from([0, 10, 0x3d, 0xff]));
    expect(e.xattrs.get('user.Ab')?.toString()).toBe('hi');
  });

  test('header-only types ignore their size field (like Go archive/tar)', async () => {
    const tar = Buffer.concat([
      header({ name: 'link', flag: '2', size: 999, linkName: 'target' }),
      header({ name: 'next', flag: '0', size: 0 }),
      end,
    ]);
    const got = await readAll(tar);
    expect(got.map((e) => [e.path, e.type, e.linkPath, e.size])).toEqual([
      ['link', 'symlink', 'target', 0],
      ['next', 'file', '', 0],
    ]);
  });

  test('global pax headers are skipped, v7 trailing-slash directories recognised, signed checksums accepted', async () => {
    const g = paxRecord('comment', 'global');
    const v7dir = header({ name: 'olddir/', flag: '\0', size: 0, magic: 'v7' });
    const hi = header({ name: 'h\u00e9', flag: '0', size: 0 });
    // Recompute the checksum as a signed sum, as some historic writers did.
    hi.fill(0x20, 148, 156);
    let signed = 0;
    for (const c of hi) signed += c > 127 ? c - 256 : c;
    hi.write(signed.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
    const tar = Buffer.concat([header({ name: 'g', flag: 'g', size: g.length }), pad(g), v7dir, hi, end]);
    const got = await readAll(tar);
    expect(got.map((e) => [e.path, e.type])).toEqual([
      ['olddir/', 'dir'],
      [Buffer.from('hé').toString('latin1'), 'file'],
    ]);
  });

  test('base-256 numbers, including negative mtimes', async () => {
    const h = header({ name: 'n', flag: '0', size: 0 });
    h.fill(0xff, 136, 148); // -1 in base-256
    const got = await readAll(Buffer.concat([withChecksum(h), end]));
    expect(got[0].mtime).toBe(-1);
  });

  test.each([
    ['pax record with a bad length', Buffer.from('99 path=x\n'), /pax record length out of bounds/],
    ['pax record without newline', Buffer.from('9 path=xy'), /not newline-terminated|out of bounds/],
    ['pax record without key', Buffer.from('7 =abc\n'), /malformed pax record/],
    ['pax record with non-numeric length', Buffer.from('x path=y\n'), /malformed pax record length/],
  ])('rejects %s', (_, data, msg) => {
    expect(() => parsePax(data)).toThrow(msg);
  });

  test('rejects bad octal fields, oversized GNU names and huge base-256 sizes', async () => {
    const badMode = header({ name: 'm', flag: '0', size: 0 });
    badMode.write('99999999', 100, 8, 'latin1');
    await expect(readAll(Buffer.concat([withChecksum(badMode), end]))).rejects.toThrow(/invalid mode field/);

    const hugeName = header({ name: '././@LongLink', flag: 'L', size: 2 << 20 });
    await expect(readAll(Buffer.concat([hugeName, end]))).rejects.toThrow(/GNU long name of \d+ bytes exceeds/);

    const huge = header({ name: 'h', flag: '0', size: 0 });
    huge.fill(0, 124, 136);
    huge[124] = 0x80;
    huge.fill(0xff, 125, 136); // 2^88 - 1
    await expect(readAll(Buffer.concat([withChecksum(huge), end]))).rejects.toThrow(/size field out of range/);
  });

  test('drains past the end marker (so gzip trailers get checked) and returns null afterwards', async () => {
    const tar = Buffer.concat([makeTar([{ path: 'a', content: 'a' }]), Buffer.alloc(9000)]);
    const r = new TarReader(chunked(tar, 512));
    expect((await r.next())?.path).toBe('a');
    expect(await r.next()).toBeNull();
    expect(await r.next()).toBeNull();
  });
});
