import { isIndexMediaType, layerCompression, MANIFEST_ACCEPT, MediaType } from '../src/media-types';
import { parseManifest } from '../src/manifest';
import { parseImageConfig } from '../src/image-config';

const digest = (c: string): string => `sha256:${c.repeat(64)}`;
const bytes = (doc: object): Buffer => Buffer.from(JSON.stringify(doc));

describe('media types', () => {
  it('accepts all four manifest kinds', () => {
    for (const t of [
      MediaType.OciIndex,
      MediaType.DockerManifestList,
      MediaType.OciManifest,
      MediaType.DockerManifest,
    ]) {
      expect(MANIFEST_ACCEPT.split(', ')).toContain(t);
    }
    expect(isIndexMediaType(MediaType.DockerManifestList)).toBe(true);
    expect(isIndexMediaType(MediaType.DockerManifest)).toBe(false);
  });

  it('knows layer compressions, including non-distributable and Docker layers', () => {
    expect(layerCompression(MediaType.DockerLayerGzip)).toBe('gzip');
    expect(layerCompression(MediaType.OciLayerZstd)).toBe('zstd');
    expect(layerCompression(MediaType.OciLayer)).toBe('none');
    expect(layerCompression('application/vnd.oci.image.layer.nondistributable.v1.tar+gzip')).toBe('gzip');
    expect(layerCompression('application/vnd.cncf.helm.chart.content.v1.tar+gzip')).toBeUndefined();
  });
});

describe('parseManifest', () => {
  const image = {
    schemaVersion: 2,
    mediaType: MediaType.DockerManifest,
    config: { mediaType: MediaType.DockerConfig, digest: digest('a'), size: 10 },
    layers: [{ mediaType: MediaType.DockerLayerGzip, digest: digest('b'), size: 20 }],
  };

  it('parses a Docker schema 2 manifest', () => {
    const parsed = parseManifest(bytes(image));
    expect(parsed.kind).toBe('image');
    if (parsed.kind === 'image')
      expect(parsed.manifest.layers[0]).toEqual({
        mediaType: MediaType.DockerLayerGzip,
        digest: digest('b'),
        size: 20,
      });
  });

  it('falls back to Content-Type, then to the shape, when the body has no mediaType', () => {
    const { mediaType: _drop, ...bare } = image;
    const byHeader = parseManifest(bytes(bare), `${MediaType.DockerManifest}; charset=utf-8`);
    expect(byHeader.kind === 'image' && byHeader.manifest.mediaType).toBe(MediaType.DockerManifest);
    const index = parseManifest(
      bytes({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: MediaType.OciManifest,
            digest: digest('c'),
            size: 5,
            platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
          },
        ],
      }),
    );
    expect(index.kind).toBe('index');
    if (index.kind === 'index')
      expect(index.index.manifests[0].platform).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
  });

  it('rejects schema 1, bad digests and bad sizes with clear messages', () => {
    expect(() => parseManifest(bytes({ schemaVersion: 1, name: 'x', fsLayers: [] }))).toThrow(/schema 1/);
    expect(() =>
      parseManifest(bytes({ ...image, layers: [{ mediaType: 'x', digest: 'sha256:abc', size: 1 }] })),
    ).toThrow(/invalid manifest layer 0/);
    expect(() =>
      parseManifest(bytes({ ...image, layers: [{ mediaType: 'x', digest: digest('d'), size: -1 }] })),
    ).toThrow(/bad size/);
    expect(() => parseManifest(Buffer.from('not json'))).toThrow(/not JSON/);
  });
});

describe('parseImageConfig', () => {
  it('exposes the run settings', () => {
    const config = parseImageConfig(
      bytes({
        architecture: 'arm64',
        variant: 'v8',
        os: 'linux',
        config: {
          Entrypoint: ['/app'],
          Cmd: ['serve'],
          Env: ['A=1'],
          WorkingDir: '/w',
          User: '1000:1000',
          ExposedPorts: { '80/tcp': {} },
          Labels: { a: 'b' },
        },
        rootfs: { type: 'layers', diff_ids: [digest('e')] },
      }),
    );
    expect(config).toMatchObject({
      architecture: 'arm64',
      variant: 'v8',
      entrypoint: ['/app'],
      cmd: ['serve'],
      env: ['A=1'],
      workingDir: '/w',
      user: '1000:1000',
      exposedPorts: ['80/tcp'],
      labels: { a: 'b' },
      diffIds: [digest('e')],
    });
  });

  it('treats a null Cmd as unset and rejects wrong types', () => {
    const config = parseImageConfig(bytes({ architecture: 'amd64', os: 'linux', config: { Cmd: null } }));
    expect(config.cmd).toBeUndefined();
    expect(config.env).toEqual([]);
    expect(() => parseImageConfig(bytes({ architecture: 'amd64', os: 'linux', config: { Cmd: 'sh' } }))).toThrow(
      /Cmd must be a list/,
    );
  });
});
