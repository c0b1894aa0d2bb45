// What a packed machine runs: the manifest's command line (trailing args replace its cmd, as
// they replace an image's CMD), env, workdir, user, resources and network policy.
import type { PackManifest } from './manifest';

export interface PackedWorkload {
  argv: string[];
  env: Record<string, string>;
  workdir?: string;
  user?: string;
  cpus: number;
  memoryMiB: number;
  network: { net: boolean; allowHosts: string[]; allowCidrs: string[] };
}

export function packedWorkload(manifest: PackManifest, command: string[] = []): PackedWorkload {
  const argv = [...manifest.entrypoint, ...(command.length > 0 ? command : manifest.cmd)];
  const env: Record<string, string> = {};
  for (const entry of manifest.env) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return {
    argv,
    env,
    ...(manifest.workdir ? { workdir: manifest.workdir } : {}),
    ...(manifest.user ? { user: manifest.user } : {}),
    cpus: manifest.cpus,
    memoryMiB: manifest.memory_mib,
    network: {
      net: manifest.network.net,
      allowHosts: manifest.network.allow_hosts,
      allowCidrs: manifest.network.allow_cidrs,
    },
  };
}
