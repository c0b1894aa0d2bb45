import {
  formatPlatform,
  hostPlatform,
  normalizePlatform,
  parsePlatform,
  platformMatches,
  selectManifest,
} from '../src/platform';
import type { Descriptor } from '../src/manifest';

const d = (platform: Descriptor['platform'], n: number, annotations?: Record<string, string>): Descriptor => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: `sha256:${String(n).repeat(64).slice(0, 64)}`,
  size: 100,
  platform,
  annotations,
});

describe('platforms', () => {
  it('maps node architectures to OCI names, always linux', () => {
    expect(hostPlatform('x64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(hostPlatform('arm64')).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(hostPlatform('arm')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(() => hostPlatform('pdp11')).toThrow(/unsupported host architecture/);
  });

  it('parses and normalizes aliases and default variants', () => {
    expect(parsePlatform('linux/arm64/v8')).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(parsePlatform('linux/aarch64')).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(parsePlatform('linux/x86_64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(parsePlatform('linux/arm/v6')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v6' });
    expect(normalizePlatform({ os: 'linux', architecture: 'arm', variant: '7' })).toEqual({
      os: 'linux',
      architecture: 'arm',
      variant: 'v7',
    });
    expect(normalizePlatform({ os: 'linux', architecture: 'amd64', variant: 'v1' })).toEqual({
      os: 'linux',
      architecture: 'amd64',
    });
    expect(formatPlatform({ os: 'linux', architecture: 'arm', variant: 'v6' })).toBe('linux/arm/v6');
    expect(() => parsePlatform('linux')).toThrow(/OS\/ARCH/);
    expect(() => parsePlatform('linux//v8')).toThrow(/OS\/ARCH/);
  });

  it('matches variants: none wanted accepts any, a wanted one must match', () => {
    expect(
      platformMatches({ os: 'linux', architecture: 'arm64', variant: 'v8' }, { os: 'linux', architecture: 'arm64' }),
    ).toBe(true);
    expect(
      platformMatches(
        { os: 'linux', architecture: 'arm', variant: 'v6' },
        { os: 'linux', architecture: 'arm', variant: 'v7' },
      ),
    ).toBe(false);
    expect(
      platformMatches({ os: 'linux', architecture: 'arm' }, { os: 'linux', architecture: 'arm', variant: 'v7' }),
    ).toBe(true);
    expect(
      platformMatches({ os: 'linux', architecture: 'arm64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }),
    ).toBe(true);
    expect(platformMatches({ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' })).toBe(false);
    expect(platformMatches({ os: 'windows', architecture: 'amd64' }, { os: 'linux', architecture: 'amd64' })).toBe(
      false,
    );
  });

  it('selects from an index, skipping attestations and preferring the default variant', () => {
    const manifests = [
      d({ os: 'unknown', architecture: 'unknown' }, 1, { 'vnd.docker.reference.type': 'attestation-manifest' }),
      d({ os: 'linux', architecture: 'arm', variant: 'v6' }, 2),
      d({ os: 'linux', architecture: 'arm', variant: 'v7' }, 3),
      d({ os: 'linux', architecture: 'amd64' }, 4),
      d({ os: 'linux', architecture: 'arm64', variant: 'v8' }, 5),
    ];
    expect(selectManifest(manifests, { os: 'linux', architecture: 'amd64' }).digest).toBe(manifests[3].digest);
    expect(selectManifest(manifests, { os: 'linux', architecture: 'arm64' }).digest).toBe(manifests[4].digest);
    expect(selectManifest(manifests, { os: 'linux', architecture: 'arm' }).digest).toBe(manifests[2].digest);
    expect(selectManifest(manifests, parsePlatform('linux/arm/v6')).digest).toBe(manifests[1].digest);
    expect(() => selectManifest(manifests, { os: 'linux', architecture: 's390x' }, 'image x')).toThrow(
      'image x has no linux/s390x variant (available: linux/arm/v6, linux/arm/v7, linux/amd64, linux/arm64)',
    );
  });
});
