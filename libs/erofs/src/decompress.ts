// Layer blobs arrive gzip'd, zstd'd or plain. The bytes decide (magic numbers); the media type is only
// checked against them, so a mislabelled blob fails loudly instead of being parsed as garbage.
import { Readable, pipeline } from 'node:stream';
import zlib from 'node:zlib';
import { Decompress } from 'fzstd';
import { EntryProblem } from './errors';

export type Compression = 'gzip' | 'zstd' | 'none';

/** Wraps errors thrown by the caller's stream so they are not mistaken for bad layer contents. */
export class SourceError extends Error {
  constructor(readonly original: unknown) {
    super(original instanceof Error ? original.message : String(original));
  }
}

async function* tagSourceErrors(src: AsyncIterable<Uint8Array | string>): AsyncGenerator<Uint8Array> {
  const it = src[Symbol.asyncIterator]();
  try {
    for (;;) {
      let r: IteratorResult<Uint8Array | string>;
      try {
        r = await it.next();
      } catch (err) {
        throw new SourceError(err);
      }
      if (r.done) return;
      if (typeof r.value === 'string') throw new EntryProblem('layer stream yields strings, not bytes');
      yield r.value;
    }
  } finally {
    await it.return?.();
  }
}

function detect(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}

function expectedFromMediaType(mediaType: string | undefined): Compression | undefined {
  if (!mediaType) return undefined;
  if (/gzip/i.test(mediaType)) return 'gzip';
  if (/zstd/i.test(mediaType)) return 'zstd';
  return undefined;
}

/** The decompressed tar stream of a layer, and how it was compressed. */
export async function decompressLayer(
  source: AsyncIterable<Uint8Array | string>,
  mediaType?: string,
): Promise<{ compression: Compression; stream: AsyncIterable<Uint8Array> }> {
  const it = tagSourceErrors(source);
  // Enough bytes to recognise a magic number, however the source happens to chunk them.
  const head: Uint8Array[] = [];
  let headLen = 0;
  while (headLen < 4) {
    const r = await it.next();
    if (r.done) break;
    head.push(r.value);
    headLen += r.value.length;
  }
  const first = Buffer.concat(head);
  const compression = detect(first);
  const expected = expectedFromMediaType(mediaType);
  if (expected && compression !== expected) {
    await it.return(undefined);
    throw new EntryProblem(
      `media type ${mediaType} says ${expected} but the data is ${compression === 'none' ? 'not compressed' : compression}`,
    );
  }
  async function* whole(): AsyncGenerator<Uint8Array> {
    if (first.length) yield first;
    yield* it;
  }
  if (compression === 'gzip') return { compression, stream: gunzip(whole()) };
  if (compression === 'zstd') return { compression, stream: unzstd(whole()) };
  return { compression, stream: whole() };
}

async function* gunzip(src: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const z = zlib.createGunzip({ chunkSize: 128 * 1024 });
  // Errors of either side surface through z's iterator below; the callback only prevents an unhandled one.
  pipeline(Readable.from(src, { objectMode: false }), z, () => undefined);
  try {
    for await (const chunk of z) yield chunk as Buffer;
  } catch (err) {
    if (err instanceof SourceError || err instanceof EntryProblem) throw err;
    throw new EntryProblem(`corrupt gzip data: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    z.destroy();
  }
}

async function* unzstd(src: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const out: Uint8Array[] = [];
  // fzstd hands every decoded block over as a fresh array, so the chunks can be queued without copying.
  const d = new Decompress((chunk) => {
    if (chunk.length) out.push(chunk);
  });
  const push = (chunk: Uint8Array, final: boolean): void => {
    try {
      d.push(chunk, final);
    } catch (err) {
      throw new EntryProblem(`corrupt zstd data: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  for await (const chunk of src) {
    push(chunk, false);
    while (out.length) yield out.shift() as Uint8Array;
  }
  push(new Uint8Array(0), true);
  while (out.length) yield out.shift() as Uint8Array;
}
