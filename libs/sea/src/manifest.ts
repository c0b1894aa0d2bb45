// The manifest a single executable carries as its asset `sea-manifest.json`: which assets it
// holds and where each goes when extracted. Written by tools/sea/build.ts, read here.

/** The asset that names every other one. */
export const MANIFEST_ASSET = 'sea-manifest.json';
export const MANIFEST_VERSION = 1;
/** Bounds on what a manifest may ask for: it sizes what extraction writes. */
const MAX_FILES = 256;
const MAX_FILE_BYTES = 512 * 1024 * 1024;

export interface SeaFile {
  /** Where it goes, relative to the extraction directory ('vmlinux', 'node_modules/koffi/index.js'). */
  name: string;
  /** The SEA asset holding it. */
  asset: string;
  /** sha256 (hex) and size of the extracted content. */
  sha256: string;
  size: number;
  /** 0o755 or 0o644 (group/other bits are dropped on extraction anyway). */
  mode: number;
  /** The asset is gzip-compressed. */
  gzip: boolean;
}

export interface SeaManifest {
  version: number;
  /** The app it was built for ('cli', 'pack-stub') and the Node runtime it carries. */
  app: string;
  node: string;
  /** sha256 of the main script: two builds with the same files but another program differ. */
  main: string;
  files: SeaFile[];
}

const SAFE_NAME = /^[A-Za-z0-9@._-]+(\/[A-Za-z0-9@._-]+)*$/;

/** Parses and checks a manifest: every path stays inside the extraction directory. */
export function parseManifest(text: string): SeaManifest {
  const value = JSON.parse(text) as Partial<SeaManifest>;
  if (value.version !== MANIFEST_VERSION) throw new Error(`unsupported SEA manifest version ${String(value.version)}`);
  if (
    typeof value.app !== 'string' ||
    typeof value.node !== 'string' ||
    typeof value.main !== 'string' ||
    !Array.isArray(value.files)
  ) {
    throw new Error('malformed SEA manifest');
  }
  if (value.files.length > MAX_FILES)
    throw new Error(`SEA manifest names ${value.files.length} files (at most ${MAX_FILES})`);
  const seen = new Set<string>();
  for (const f of value.files) {
    const ok =
      typeof f?.name === 'string' &&
      SAFE_NAME.test(f.name) &&
      !f.name.split('/').some((part) => part === '.' || part === '..') &&
      typeof f.asset === 'string' &&
      typeof f.sha256 === 'string' &&
      /^[0-9a-f]{64}$/.test(f.sha256) &&
      Number.isSafeInteger(f.size) &&
      f.size >= 0 &&
      f.size <= MAX_FILE_BYTES &&
      (f.mode === 0o755 || f.mode === 0o644) &&
      typeof f.gzip === 'boolean';
    if (!ok) throw new Error(`malformed SEA manifest entry ${JSON.stringify(f?.name ?? f)}`);
    if (seen.has(f.name)) throw new Error(`SEA manifest names ${f.name} twice`);
    seen.add(f.name);
  }
  return value as SeaManifest;
}
