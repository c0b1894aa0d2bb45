// A hostile layer's metadata headers: each pax or GNU long-name payload is bounded on its own,
// but a stream may send any number of them before the entry they describe. Pax records merge
// (xattrs accumulate), so the reader must bound what one entry's headers add up to, and stop
// reading there rather than at the end of the stream.
import { MAX_META_SIZE, TarReader } from '../src/tar';
import { header, paxRecord } from './helpers/tar-writer';

const pad = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);

/** One pax header whose payload (a single xattr record) is just under the per-header bound. */
function bigPaxHeader(i: number): Buffer {
  const record = paxRecord(`SCHILY.xattr.user.k${i}`, Buffer.alloc(MAX_META_SIZE - 64, 0x61));
  return Buffer.concat([header({ name: `PaxHeaders/f${i}`, flag: 'x', size: record.length }), pad(record)]);
}

/** `count` metadata headers made by `make`, then a file entry; counts the bytes the reader pulled. */
function hostileStream(
  count: number,
  make: (i: number) => Buffer,
): { source: AsyncGenerator<Uint8Array>; pulled: () => number } {
  let pulled = 0;
  async function* source(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < count; i++) {
      const b = make(i);
      pulled += b.length;
      yield b;
    }
    const tail = Buffer.concat([header({ name: 'f', flag: '0', size: 0 }), Buffer.alloc(1024)]);
    pulled += tail.length;
    yield tail;
  }
  return { source: source(), pulled: () => pulled };
}

async function firstEntryError(source: AsyncGenerator<Uint8Array>): Promise<unknown> {
  const reader = new TarReader(source);
  try {
    const entry = await reader.next();
    return new Error(`no error: an entry with ${entry?.xattrs.size} xattrs was returned`);
  } catch (err) {
    return err;
  } finally {
    await reader.close().catch(() => undefined);
  }
}

it('stops at the merged bound when pax headers keep adding xattrs to one entry', async () => {
  const hostile = hostileStream(64, bigPaxHeader);
  const err = await firstEntryError(hostile.source);
  expect(hostile.pulled()).toBeLessThanOrEqual(3 * MAX_META_SIZE);
  expect((err as Error).message).toBe(`the metadata headers of one entry exceed ${MAX_META_SIZE} bytes together`);
});

it('stops at the merged bound when GNU long-name headers repeat', async () => {
  const longName = (i: number): Buffer => {
    const name = Buffer.alloc(MAX_META_SIZE / 2, 0x61 + (i % 26));
    return Buffer.concat([header({ name: '././@LongLink', flag: 'L', size: name.length }), pad(name)]);
  };
  const hostile = hostileStream(64, longName);
  const err = await firstEntryError(hostile.source);
  expect(hostile.pulled()).toBeLessThanOrEqual(3 * MAX_META_SIZE);
  expect((err as Error).message).toBe(`the metadata headers of one entry exceed ${MAX_META_SIZE} bytes together`);
});

it('bounds the number of metadata headers of one entry, however small each is', async () => {
  const tiny = (i: number): Buffer => {
    const record = paxRecord('comment', `c${i}`);
    return Buffer.concat([header({ name: 'PaxHeaders/g', flag: i % 2 ? 'g' : 'x', size: record.length }), pad(record)]);
  };
  const hostile = hostileStream(100_000, tiny);
  const err = await firstEntryError(hostile.source);
  expect(hostile.pulled()).toBeLessThan(1024 * 1024);
  expect((err as Error).message).toMatch(/^more than \d+ metadata headers before one entry$/);
});

it('still reads an entry with one of each metadata header at the per-header bound', async () => {
  const name = `${'d/'.repeat(100)}file`;
  const pax = Buffer.concat([
    paxRecord('path', name),
    paxRecord('SCHILY.xattr.user.big', Buffer.alloc(MAX_META_SIZE / 2, 0x62)),
  ]);
  const link = Buffer.from('target\0');
  const stream = Buffer.concat([
    header({ name: 'PaxHeaders/g', flag: 'g', size: 0 }),
    header({ name: '././@LongLink', flag: 'K', size: link.length }),
    pad(link),
    header({ name: 'PaxHeaders/x', flag: 'x', size: pax.length }),
    pad(pax),
    header({ name: 'short', flag: '1', size: 0 }),
    Buffer.alloc(1024),
  ]);
  async function* once(): AsyncGenerator<Uint8Array> {
    yield stream;
  }
  const reader = new TarReader(once());
  const entry = await reader.next();
  expect(entry?.path).toBe(name);
  expect(entry?.linkPath).toBe('target');
  expect(entry?.xattrs.get('user.big')?.length).toBe(MAX_META_SIZE / 2);
  expect(await reader.next()).toBeNull();
});
