// OCI layer application: layers in order, each tar entry placed into the merged tree, whiteouts
// (.wh.NAME) and opaque markers (.wh..wh..opq) removing what lower layers contributed.
import { SmolvmError } from '@smolvm/common';
import { decompressLayer, SourceError, type Compression } from './decompress';
import { EntryProblem, InvalidLayerError } from './errors';
import { ImageBuild, ioError, type ErofsBuildOptions, type ErofsBuildStats } from './image-build';
import { checkName, fromByteString, splitPath } from './paths';
import { TarReader, type TarEntry } from './tar';

export interface LayerSource {
  /** Opens the layer blob (compressed as stored); called once, in layer order. */
  open():
    Promise<AsyncIterable<Uint8Array> | NodeJS.ReadableStream> | AsyncIterable<Uint8Array> | NodeJS.ReadableStream;
  /** OCI/Docker media type; only checked against the detected compression. */
  mediaType?: string;
}

export interface LayerStats {
  compression: Compression;
  entries: number;
}

export interface ErofsLayersStats extends ErofsBuildStats {
  layers: LayerStats[];
}

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';
const META_PREFIX = '.wh..wh.';

/**
 * Converts an image's ordered layer tars into one erofs image at `outPath`, written to a temp file
 * beside it and renamed into place. On failure nothing is left behind and the error names the layer
 * (and entry) at fault: InvalidLayerError for bad contents, the source's own SmolvmError for failures
 * to read it, SmolvmError for I/O on the output.
 */
export async function buildErofsFromLayers(
  layers: readonly LayerSource[],
  outPath: string,
  opts: ErofsBuildOptions = {},
): Promise<ErofsLayersStats> {
  const build = new ImageBuild(outPath, opts);
  try {
    const perLayer: LayerStats[] = [];
    for (let i = 0; i < layers.length; i++) perLayer.push(await applyLayer(build, layers[i], i));
    return { ...build.finish(), layers: perLayer };
  } catch (err) {
    build.abort();
    throw err;
  }
}

async function applyLayer(build: ImageBuild, layer: LayerSource, index: number): Promise<LayerStats> {
  let current: string | undefined;
  let tar: TarReader | undefined;
  try {
    let source: AsyncIterable<Uint8Array | string>;
    try {
      source = (await layer.open()) as AsyncIterable<Uint8Array | string>;
    } catch (err) {
      throw new SourceError(err);
    }
    const { compression, stream } = await decompressLayer(source, layer.mediaType);
    tar = new TarReader(stream);
    let entries = 0;
    for (let entry = await tar.next(); entry; entry = await tar.next()) {
      current = entry.path;
      await applyEntry(build, tar, entry, index);
      current = undefined;
      entries++;
    }
    return { compression, entries };
  } catch (err) {
    await tar?.close().catch(() => undefined);
    throw contextualise(err, index, current);
  }
}

async function applyEntry(build: ImageBuild, tar: TarReader, e: TarEntry, layer: number): Promise<void> {
  const components = splitPath(e.path);
  const base = components[components.length - 1];
  if (base?.startsWith(WHITEOUT)) {
    const parent = components.slice(0, -1);
    if (base === OPAQUE) build.opaque(parent, layer);
    else if (base.startsWith(META_PREFIX)) {
      // Other aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content, skipped like containerd does.
    } else {
      const name = base.slice(WHITEOUT.length);
      checkName(name);
      build.whiteout([...parent, name], layer);
    }
    return;
  }
  if (e.type === 'hardlink') {
    // Metadata comes from the inode the link joins; a link header's own fields are not applied.
    build.addHardLink(components, splitPath(e.linkPath), layer);
    return;
  }
  const attrs = build.attrs({ mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime, mtimeNsec: e.mtimeNsec }, e.xattrs);
  switch (e.type) {
    case 'dir':
      build.addDir(components, attrs, layer);
      return;
    case 'file':
      await build.addFile(components, attrs, layer, (write) => tar.readBody(write));
      return;
    case 'symlink':
      build.addSymlink(components, Buffer.from(e.linkPath, 'latin1'), attrs, layer);
      return;
    case 'chardev':
    case 'blockdev':
      build.addDevice(components, e.type, attrs, layer, e.devMajor, e.devMinor);
      return;
    case 'fifo':
      build.addDevice(components, 'fifo', attrs, layer);
      return;
  }
}

const MAX_SHOWN_PATH = 200;

function contextualise(err: unknown, layerIndex: number, rawPath: string | undefined): Error {
  const entryPath = rawPath === undefined ? undefined : shorten(fromByteString(rawPath));
  if (err instanceof SourceError) {
    if (err.original instanceof SmolvmError) return err.original;
    return new SmolvmError(`layer ${layerIndex}: reading the layer failed: ${err.message}`, {
      cause: err.original,
      remedy: 'check the layer source (network, content store) and retry',
    });
  }
  if (err instanceof EntryProblem) return new InvalidLayerError(err.message, { layerIndex, entryPath }, { cause: err });
  if (err instanceof SmolvmError) return err;
  return ioError(
    `layer ${layerIndex}${entryPath === undefined ? '' : `, entry '${entryPath}'`}: writing the erofs image failed`,
    err,
  );
}

function shorten(p: string): string {
  return p.length > MAX_SHOWN_PATH ? `${p.slice(0, MAX_SHOWN_PATH)}...` : p;
}
