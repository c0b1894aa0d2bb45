// Assembles a .smolmachine from a manifest and section streams, in one pass: each section is
// hashed while it is copied, and the file appears (renamed into place) only once complete.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { commitTempFile, tempPathFor } from '@smolvm/common';
import { FOOTER_SIZE, SECTION_ALIGN, alignUp, encodeFooter } from './format';
import {
  SectionMediaType,
  manifestVersion,
  type PackManifest,
  type PackManifestBase,
  type PackSection,
  type SectionName,
} from './manifest';

export interface SectionSource {
  name: SectionName;
  /** The section's bytes; called once. */
  open: () => Readable | AsyncIterable<Uint8Array>;
}

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
      for await (const chunk of source.open()) {
        hash.update(chunk);
        // All-zero runs (a shrunk disk's unused inode tables) become holes: the file stays sparse here.
        if (isZero(chunk)) pos += chunk.length;
        else await write(chunk);
      }
      const size = pos - payloadStart - offset;
      if (size === 0) throw new Error(`assemblePack: section ${source.name} is empty`);
      sections.push({
        name: source.name,
        media_type: SectionMediaType[source.name],
        offset,
        size,
        sha256: hash.digest('hex'),
      });
    }
    await pad();
    const { snapshot, ...rest } = opts.manifest;
    const version = manifestVersion(opts.manifest);
    // A version 1 manifest has no snapshot field at all (older readers refuse unknown fields).
    const manifest: PackManifest = {
      format: 'smolmachine',
      version,
      ...rest,
      ...(snapshot ? { snapshot } : {}),
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
