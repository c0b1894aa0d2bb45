// The media types a registry may answer with, and what each one means to us.
export const MediaType = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  DockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  DockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
} as const;

/** Sent on every manifest request: without it registries fall back to schema 1 or pick one platform. */
export const MANIFEST_ACCEPT = [
  MediaType.OciIndex,
  MediaType.DockerManifestList,
  MediaType.OciManifest,
  MediaType.DockerManifest,
].join(', ');

export function isIndexMediaType(mediaType: string | undefined): boolean {
  return mediaType === MediaType.OciIndex || mediaType === MediaType.DockerManifestList;
}

export function isImageManifestMediaType(mediaType: string | undefined): boolean {
  return mediaType === MediaType.OciManifest || mediaType === MediaType.DockerManifest;
}

export function isImageConfigMediaType(mediaType: string | undefined): boolean {
  return mediaType === MediaType.OciConfig || mediaType === MediaType.DockerConfig;
}

export type LayerCompression = 'none' | 'gzip' | 'zstd';

/**
 * The compression a layer media type declares, or undefined when it is no filesystem layer at
 * all (an artifact blob, a signature). Non-distributable OCI variants count as layers too.
 */
export function layerCompression(mediaType: string): LayerCompression | undefined {
  const base = mediaType.replace('.nondistributable.', '.');
  switch (base) {
    case MediaType.OciLayer:
      return 'none';
    case MediaType.OciLayerGzip:
    case MediaType.DockerLayerGzip:
    case MediaType.DockerForeignLayerGzip:
      return 'gzip';
    case MediaType.OciLayerZstd:
      return 'zstd';
    default:
      return undefined;
  }
}
