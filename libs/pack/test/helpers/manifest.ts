// A pack manifest for tests that write packs of fake sections (no VM): the reference defaults,
// a bare image, linux on this host's architecture; fields to change are given.
import type { PackManifestBase } from '../../src';

export function testManifest(fields: Partial<PackManifestBase> = {}): PackManifestBase {
  const platform = `linux/${process.arch === 'arm64' ? 'arm64' : 'amd64'}`;
  return {
    platform,
    host_platform: platform,
    created: '2026-12-07T03:00:00Z',
    smolvm_version: '0.1.0',
    image: null,
    from_vm: null,
    entrypoint: [],
    cmd: ['/bin/sh'],
    env: [],
    workdir: null,
    user: null,
    cpus: 1,
    memory_mib: 256,
    storage_gib: 20,
    overlay_gib: 2,
    network: { net: false, allow_hosts: [], allow_cidrs: [] },
    artifact: null,
    ...fields,
  };
}
