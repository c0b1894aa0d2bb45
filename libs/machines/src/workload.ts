// What a machine is made from, for every front end: the record a merged workload (flags or API
// body + Smolfile + the image's config) describes, and the image a machine boots from. Pulling is
// the caller's (the CLI draws a progress bar, the API streams events): it passes `pull`.
import path from 'node:path';
import { SmolvmError } from '@smolvm/common';
import { applyImageConfig, formatReference, mergeEnv, parseEnvEntry, parseImageReference, type EnvVar, type ImageReference, type MergedRunOptions } from '@smolvm/config';
import type { ExecOptions } from '@smolvm/agent-protocol';
import type { MachineRecord, NewMachine } from '@smolvm/machine-store';
import type { PreparedImage } from '@smolvm/oci';

/** Pulls (if missing) and prepares an image. */
export type PullImage = (reference: string | ImageReference) => Promise<PreparedImage>;

/** Pulls the image if missing (pinned by digest in the record) and fills in the machine's settings. */
export async function machineInput(merged: MergedRunOptions, opts: { pull: PullImage; smolfile?: string }): Promise<{ input: Omit<NewMachine, 'name'>; imageErofs?: string }> {
  const prepared = merged.image ? await opts.pull(merged.image) : undefined;
  const config = applyImageConfig(merged, prepared?.config ?? {});
  const input: Omit<NewMachine, 'name'> = {
    ...(merged.image ? { image: formatReference(merged.image), imageDigest: prepared?.manifestDigest } : {}),
    cpus: config.cpus,
    memoryMiB: config.memoryMib,
    storageGiB: config.storageGib,
    overlayGiB: config.overlayGib,
    volumes: config.volumes.map((v) => ({ host: v.hostPath, guest: v.guestPath, readOnly: v.readOnly })),
    env: config.env.map((v) => `${v.name}=${v.value}`),
    ...(config.workdir ? { workdir: config.workdir } : {}),
    ...(config.user ? { user: config.user } : {}),
    init: config.init,
    net: merged.network.enabled,
    allowHosts: merged.network.allowHosts,
    allowCidrs: merged.network.allowCidrs.map((c) => c.cidr),
    ports: merged.ports.map((p) => ({ host: p.hostPort, guest: p.guestPort })),
    sshAgent: merged.sshAgent,
    ...(config.health ? { health: config.health } : {}),
    ...(opts.smolfile ? { smolfile: path.resolve(opts.smolfile) } : {}),
  };
  return { input, ...(prepared ? { imageErofs: prepared.erofsPath } : {}) };
}

/**
 * The prepared image of exactly the image the machine was created from: its overlay disk only
 * makes sense on top of that image, so a tag that has moved since does not matter. From the
 * local store when it is there, else pulled by digest. Undefined for a bare machine.
 */
export async function pinnedImage(record: MachineRecord, pull: PullImage): Promise<PreparedImage | undefined> {
  if (!record.image) return undefined;
  const digest = record.imageDigest;
  if (!digest) return pull(record.image);
  // Imported here: most callers that reach a machine (ls, exec, stop...) never touch images.
  const { ImageService } = await import('@smolvm/oci');
  const service = new ImageService();
  try {
    const local = service.find(digest)[0];
    if (local) return await service.prepare(local.reference, { pull: 'never' });
  } finally {
    await service.close();
  }
  const ref = parseImageReference(record.image);
  const prepared = await pull(formatReference({ registry: ref.registry, repository: ref.repository, digest }));
  if (prepared.manifestDigest !== digest) {
    throw new SmolvmError(`image ${record.image} resolved to ${prepared.manifestDigest}, not the ${digest} machine "${record.name}" was created from`, {
      remedy: 'create the machine again to use the current image',
    });
  }
  return prepared;
}

/**
 * What `exec` in a machine runs with: the machine's env with `env` on top (later wins), the
 * given working directory or the machine's, and the machine's user.
 */
export function machineExecOptions(record: MachineRecord, argv: string[], extra: { env?: readonly EnvVar[]; workdir?: string } = {}): ExecOptions {
  const env = mergeEnv(
    record.env.map((e) => parseEnvEntry(e)),
    extra.env ?? [],
  );
  const cwd = extra.workdir ?? record.workdir;
  return { argv, env: Object.fromEntries(env.map((v) => [v.name, v.value])), ...(cwd ? { cwd } : {}), ...(record.user ? { user: record.user } : {}) };
}
