// Assembles a .smolmachine from a manifest and section streams, in one pass: each section is
// hashed while it is copied, and the file appears (renamed into place) only once complete.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { commitTempFile, hashingTap, tempPathFor } from '@smolvm/common';
import { FOOTER_SIZE, SECTION_ALIGN, alignUp, encodeFooter } from './format';
import {
  COMPRESSIBLE_SECTIONS,
  RUNTIME_MEDIA_TYPE,
  manifestVersion,
  runtimeShapeProblem,
  sectionMediaType,
  type SectionCompression,
  type PackManifest,
  type PackManifestBase,
  type PackSection,
  type SectionName,
} from './manifest';

export interface SectionSource {
  name: SectionName;
  /** The section's bytes; called once. */
  open: () => Readable | AsyncIterable<Uint8Array>;
  /** Store it compressed (only sections that are extracted before use: COMPRESSIBLE_SECTIONS). */
  compress?: SectionCompression;
  /**
   * `open` gives bytes already compressed (a registry pull copies a section as it was pushed): they
   * are written as they are, with this description; a reader checks it when it decompresses them.
   */
  compressed?: Required<Pick<PackSection, 'compression' | 'uncompressed_size' | 'uncompressed_sha256'>>;
}

/**
 * gzip level of compressed sections: fixed, so one kernel always compresses to the same bytes
 * (one registry blob for every pack of a build). Level 1: on the 19.7 MB kernel, 3.71 MB in
 * ~0.3 s against level 6's 3.48 MB in ~0.7 s (2 loaded cores): 0.1% of a pack for half a second
 * of every `pack create`.
 */
const GZIP_LEVEL = 1;

export interface AssembleOptions {
  output: string;
  manifest: PackManifestBase;
  sections: SectionSource[];
  /**
   * Bytes (or a file) to put before the payload (the stub executable, for --single-file); padded so the payload starts
   * aligned.
   */
  prefix?: string | Uint8Array;
  /** Mode of the output (default 0644: a pack is made to be handed to others; 0755 with a prefix). */
  mode?: number;
  /**
   * The executable bytes the guest's agent runs on (format version 4): the first `size` bytes of
   * the packed executable, as `runtimeOf` measures them. Not written into the pack.
   */
  runtime?: { size: number; sha256: string };
}

export interface AssembledPack {
  manifest: PackManifest;
  /** Where the payload starts in the file (0 unless a prefix was given). */
  payloadStart: number;
  size: number;
}

const ZEROS = Buffer.alloc(SECTION_ALIGN);

/** Whether a chunk is all zero bytes (written as a hole where the file can stay sparse). */
export function isZero(chunk: Uint8Array): boolean {
  for (let i = 0; i < chunk.length; i += SECTION_ALIGN) {
    const n = Math.min(SECTION_ALIGN, chunk.length - i);
    if (Buffer.compare(Buffer.from(chunk.buffer, chunk.byteOffset + i, n), ZEROS.subarray(0, n)) !== 0) return false;
  }
  return true;
}

export async function assemblePack(opts: AssembleOptions): Promise<AssembledPack> {
  const names = opts.sections.map((s) => s.name);
  if (new Set(names).size !== names.length)
    throw new Error(`assemblePack: a section is named twice (${names.join(', ')})`);
  for (const s of opts.sections)
    if ((s.compress ?? s.compressed) && !COMPRESSIBLE_SECTIONS.includes(s.name))
      throw new Error(`assemblePack: section ${s.name} is used in place and cannot be compressed`);
  const problem = opts.runtime && runtimeShapeProblem(opts.runtime);
  if (problem) throw new Error(`assemblePack: the manifest ${problem}`);
  const output = path.resolve(opts.output);
  const tmp = tempPathFor(output);
  const fh = await fs.promises.open(tmp, 'wx', opts.mode ?? (opts.prefix ? 0o755 : 0o644));
  try {
    let pos = 0;
    const write = async (chunk: Uint8Array) => {
      await fh.write(chunk, 0, chunk.length, pos);
      pos += chunk.length;
    };
    const pad = async () => {
      const n = alignUp(pos) - pos;
      if (n > 0) await write(ZEROS.subarray(0, n));
    };
    if (typeof opts.prefix === 'string') {
      for await (const chunk of fs.createReadStream(opts.prefix)) await write(chunk as Buffer);
    } else if (opts.prefix) {
      await write(opts.prefix);
    }
    await pad();
    const payloadStart = pos;
    const sections: PackSection[] = [];
    for (const source of opts.sections) {
      await pad();
      const offset = pos - payloadStart;
      const hash = crypto.createHash('sha256');
      const copy = async (chunks: AsyncIterable<Uint8Array>) => {
        for await (const chunk of chunks) {
          hash.update(chunk);
          // All-zero runs (a shrunk disk's unused inode tables) become holes: the file stays sparse here.
          if (isZero(chunk)) pos += chunk.length;
          else await write(chunk);
        }
      };
      let described = source.compressed;
      if (source.compress) {
        // Hashed and counted on the way into the compressor: the reader checks what it inflates to.
        const raw = hashingTap();
        const gzip = zlib.createGzip({ level: GZIP_LEVEL });
        await Promise.all([pipeline(source.open(), raw.tap, gzip), copy(gzip)]);
        described = {
          compression: source.compress,
          uncompressed_size: raw.size(),
          uncompressed_sha256: raw.digest(),
        };
      } else {
        await copy(source.open());
      }
      const size = pos - payloadStart - offset;
      if (size === 0 || described?.uncompressed_size === 0)
        throw new Error(`assemblePack: section ${source.name} is empty`);
      sections.push({
        name: source.name,
        media_type: sectionMediaType(source.name, described?.compression),
        offset,
        size,
        sha256: hash.digest('hex'),
        ...described,
      });
    }
    await pad();
    // A runtime comes only from the option (a manifest object given here may carry a stale one).
    const { snapshot, runtime: _stale, ...rest } = opts.manifest as PackManifestBase & Pick<PackManifest, 'runtime'>;
    const runtime = opts.runtime;
    const version = manifestVersion(
      opts.manifest,
      sections.some((s) => s.compression),
      runtime !== undefined,
    );
    // A version 1 manifest has no snapshot field at all (older readers refuse unknown fields); the same for runtime.
    const manifest: PackManifest = {
      format: 'smolmachine',
      version,
      ...rest,
      ...(snapshot ? { snapshot } : {}),
      ...(runtime ? { runtime: { media_type: RUNTIME_MEDIA_TYPE, size: runtime.size, sha256: runtime.sha256 } } : {}),
      sections,
    };
    const manifestBytes = Buffer.from(JSON.stringify(manifest, null, 2) + '\n', 'utf8');
    const manifestOffset = pos - payloadStart;
    await write(manifestBytes);
    const payloadLength = pos - payloadStart + FOOTER_SIZE;
    await write(
      encodeFooter({
        version,
        flags: 0,
        manifestOffset,
        manifestLength: manifestBytes.length,
        payloadLength,
        manifestSha256: crypto.createHash('sha256').update(manifestBytes).digest('hex'),
      }),
    );
    await fh.sync();
    await fh.close();
    commitTempFile(tmp, output);
    return { manifest, payloadStart, size: pos };
  } catch (err) {
    await fh.close().catch(() => undefined);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}
