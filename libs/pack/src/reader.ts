// Opening a .smolmachine: footer, manifest and section table are read and checked at once (cheap);
// the sections' sha256 are checked by verify() before first use, and a verification is
// remembered per file identity so later starts of the same file skip the hashing.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { FOOTER_SIZE, MAX_MANIFEST_BYTES, PackFormatError, decodeFooter } from './format';
import { parseManifest, type PackManifest, type PackSection, type SectionName } from './manifest';
import { identityOf, isRemembered, remember, sameIdentity, verifiedRecordPath, type FileIdentity } from './verified';

export type { FileIdentity } from './verified';

/** A section with its place in the file (payload start + offset). */
export interface LocatedSection extends PackSection {
  fileOffset: number;
}

function readExactly(fd: number, length: number, position: number): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? buf : buf.subarray(0, done);
}

export class PackFile {
  private constructor(
    readonly path: string,
    readonly manifest: PackManifest,
    /** sha256 of the manifest (hex): names this pack's content, since the manifest holds every section's sha256. */
    readonly manifestSha256: string,
    readonly payloadStart: number,
    readonly identity: FileIdentity,
  ) {}

  /** `sha256:<manifest sha256>`: the pack's digest. */
  get digest(): string {
    return `sha256:${this.manifestSha256}`;
  }

  /** Reads and checks the footer, the manifest and its section table; refuses anything else with PackFormatError. */
  static open(file: string): PackFile {
    const abs = path.resolve(file);
    let fd: number;
    try {
      fd = fs.openSync(abs, 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new PackFormatError(
        abs,
        code === 'ENOENT' ? 'no such file' : `it cannot be read (${code ?? (err as Error).message})`,
        code === 'ENOENT' ? 'check the path' : 'check its permissions',
      );
    }
    try {
      const st = fs.fstatSync(fd, { bigint: true });
      if (!st.isFile()) throw new PackFormatError(abs, 'it is not a regular file');
      const size = Number(st.size);
      if (size < FOOTER_SIZE)
        throw new PackFormatError(abs, `it is ${size} bytes, shorter than the footer (truncated?)`);
      const footer = decodeFooter(readExactly(fd, FOOTER_SIZE, size - FOOTER_SIZE), abs);
      if (footer.payloadLength > size || footer.payloadLength < FOOTER_SIZE)
        throw new PackFormatError(
          abs,
          `its footer says the payload is ${footer.payloadLength} bytes, and the file is ${size} (truncated?)`,
        );
      const payloadStart = size - footer.payloadLength;
      if (footer.manifestLength > MAX_MANIFEST_BYTES)
        throw new PackFormatError(
          abs,
          `its manifest is ${footer.manifestLength} bytes, over the ${MAX_MANIFEST_BYTES} limit`,
        );
      if (footer.manifestOffset + footer.manifestLength !== footer.payloadLength - FOOTER_SIZE)
        throw new PackFormatError(abs, 'its manifest does not end where the footer begins (truncated or spliced?)');
      const bytes = readExactly(fd, footer.manifestLength, payloadStart + footer.manifestOffset);
      const digest = crypto.createHash('sha256').update(bytes).digest('hex');
      if (digest !== footer.manifestSha256)
        throw new PackFormatError(
          abs,
          'its manifest does not match the digest in its footer (damaged or tampered with)',
        );
      const manifest = parseManifest(bytes, abs, footer.manifestOffset);
      if (manifest.version !== footer.version)
        throw new PackFormatError(
          abs,
          `its manifest says format version ${manifest.version} and its footer ${footer.version} (spliced?)`,
        );
      return new PackFile(abs, manifest, digest, payloadStart, identityOf(st));
    } finally {
      fs.closeSync(fd);
    }
  }

  sections(): LocatedSection[] {
    return this.manifest.sections.map((s) => ({ ...s, fileOffset: this.payloadStart + s.offset }));
  }

  section(name: SectionName): LocatedSection | undefined {
    return this.sections().find((s) => s.name === name);
  }

  /** A section's bytes as a stream (not verified on the way: verify() first, or hash what you read). */
  readSection(name: SectionName): Readable {
    const s = this.section(name);
    if (!s) throw new PackFormatError(this.path, `it has no ${name} section`);
    return fs.createReadStream(this.path, { start: s.fileOffset, end: s.fileOffset + s.size - 1 });
  }

  /**
   * Checks every section's sha256 unless this file (same identity, same manifest) was verified
   * before by this user (a record under `cacheDir`). Throws PackFormatError naming the first
   * section that does not match. Returns whether the check was remembered. `hashed`: sections
   * the caller checked against the table itself, reading this file (not read again).
   */
  async verify(cacheDir?: string, options: { hashed?: readonly SectionName[] } = {}): Promise<{ remembered: boolean }> {
    const record = cacheDir
      ? verifiedRecordPath(cacheDir, [this.identity, this.manifestSha256, this.payloadStart])
      : undefined;
    if (record && isRemembered(record, cacheDir as string)) return { remembered: true };
    for (const s of this.sections()) {
      // Already hashed by the caller, from this file, while it copied them (extractSection).
      if (options.hashed?.includes(s.name)) continue;
      const hash = crypto.createHash('sha256');
      let read = 0;
      for await (const chunk of this.readSection(s.name)) {
        hash.update(chunk as Buffer);
        read += (chunk as Buffer).length;
      }
      if (read !== s.size) throw new PackFormatError(this.path, `its ${s.name} section is cut short (truncated?)`);
      if (hash.digest('hex') !== s.sha256)
        throw new PackFormatError(
          this.path,
          `its ${s.name} section does not match its sha256 (damaged or tampered with)`,
        );
    }
    // Remembered only if the file did not change while it was read.
    const now = identityOf(fs.statSync(this.path, { bigint: true }));
    if (record && sameIdentity(now, this.identity))
      remember(record, { path: this.path, identity: this.identity, manifest_sha256: this.manifestSha256 });
    return { remembered: false };
  }
}
