// What a machine is made from, for every front end: the record a merged workload (flags or API
// body + Smolfile + the image's config) describes, and the image a machine boots from. Pulling is
// the caller's (the CLI draws a progress bar, the API streams events): it passes `pull`.
import path from 'node:path';
import { SmolvmError } from '@smolvm/common';
import {
  applyImageConfig,
  formatReference,
  parseImageReference,
  type ImageReference,
  type MergedRunOptions,
} from '@smolvm/config';
import type { MachineRecord, NewMachine } from '@smolvm/machine-store';
import type { BuiltBaseOptions, PreparedImage } from '@smolvm/oci';

/** Pulls (if missing) and prepares an image. */
export type PullImage = (reference: string | ImageReference) => Promise<PreparedImage>;

/**
 * Pulls the image if missing (pinned by digest in the record) and fills in the machine's settings.
 * A bare machine (no image) is based on the base image bare VMs run on (`base`: the caller's,
 * from config.toml or the built Debian base), pinned like any image.
 */
export async function machineInput(
  merged: MergedRunOptions,
  opts: { pull: PullImage; base: () => Promise<PreparedImage>; smolfile?: string },
): Promise<{ input: Omit<NewMachine, 'name'>; imageErofs: string }> {
  const prepared = merged.image ? await opts.pull(merged.image) : await opts.base();
  const config = applyImageConfig(merged, prepared.config);
  const input: Omit<NewMachine, 'name'> = {
    image: merged.image ? formatReference(merged.image) : prepared.reference,
    imageDigest: prepared.manifestDigest,
    cpus: config.cpus,
    memoryMiB: config.memoryMib,
    storageGiB: config.storageGib,
    overlayGiB: config.overlayGib,
    volumes: config.volumes,
    env: config.env.map((v) => `${v.name}=${v.value}`),
    ...(config.workdir ? { workdir: config.workdir } : {}),
    ...(config.user ? { user: config.user } : {}),
    init: config.init,
    ...machineNetwork(merged),
    sshAgent: merged.sshAgent,
    ...(config.health ? { health: config.health } : {}),
    ...(opts.smolfile ? { smolfile: path.resolve(opts.smolfile) } : {}),
  };
  return { input, imageErofs: prepared.erofsPath };
}

/** A merged workload's network policy and port forwards, as a machine record holds them. */
export function machineNetwork(
  merged: Pick<MergedRunOptions, 'network' | 'ports'>,
): Pick<NewMachine, 'net' | 'allowHosts' | 'allowCidrs' | 'ports'> {
  return {
    net: merged.network.enabled,
    allowHosts: merged.network.allowHosts,
    allowCidrs: merged.network.allowCidrs.map((c) => c.cidr),
    ports: merged.ports,
  };
}

export interface PinnedImageOptions {
  /** Where a built base is besides the host's set-up (the single-file smolvm's own). */
  builtBase?: BuiltBaseOptions;
}

/**
 * The prepared image of exactly the image the machine was created from: its overlay disk only
 * makes sense on top of that image, so a tag that has moved since does not matter. From the
 * local store when it is there, else pulled by digest. Undefined for a machine without an image
 * (made before bare machines had a base: the agent's busybox).
 */
export async function pinnedImage(
  record: MachineRecord,
  pull: PullImage,
  opts: PinnedImageOptions = {},
): Promise<PreparedImage | undefined> {
  if (!record.image) return undefined;
  const digest = record.imageDigest;
  if (!digest) return pull(record.image);
  // Imported here: most callers that reach a machine (ls, exec, stop...) never touch images.
  const { ImageService, ensureBuiltBase, isBuiltBaseReference } = await import('@smolvm/oci');
  const service = new ImageService();
  try {
    let local = service.find(digest)[0];
    // A bare machine's base, removed from this store (or another SMOLVM_HOME): imported again
    // from the set-up's build (or the single file's); no registry has it.
    if (!local && isBuiltBaseReference(record.image)) {
      await ensureBuiltBase(service.store, process.env, opts.builtBase ?? {}).catch(() => undefined);
      local = service.find(digest)[0];
      if (!local) {
        throw new SmolvmError(
          `the base image machine "${record.name}" was created from (${record.image}, ${digest}) is no longer on this host`,
          {
            remedy: 'create the machine again to use the current base (its overlay only fits the base it was made on)',
          },
        );
      }
    }
    if (local) return await service.prepare(local.reference, { pull: 'never' });
  } finally {
    await service.close();
  }
  const ref = parseImageReference(record.image);
  const prepared = await pull(formatReference({ registry: ref.registry, repository: ref.repository, digest }));
  if (prepared.manifestDigest !== digest) {
    throw new SmolvmError(
      `image ${record.image} resolved to ${prepared.manifestDigest}, not the ${digest} machine "${record.name}" was created from`,
      {
        remedy: 'create the machine again to use the current image',
      },
    );
  }
  return prepared;
}
