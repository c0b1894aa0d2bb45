// The agent's V8 startup snapshot, built inside a guest. V8 folds the CPU features it detects
// into a snapshot's tag, and a guest CPU (TCG's `max`, or KVM's filtered `host`) differs from the
// host's, so a blob built on the host does not load in the VM (measured: node exits 14). Built
// once in a VM booted from the plain agent image, it loads in every later VM on that CPU model.
import path from 'node:path';
import { SmolvmError } from '@smolvm/common';
import type { AgentClient } from '@smolvm/agent-protocol';
import { BUNDLE_PATH, NODE_PATH, mountRuntime } from './layout';
import { DEFAULT_NODE_FLAGS } from './ensure';

/**
 * Builds the blob in a running bare VM of the plain agent image (no setup with an image root:
 * the agent image must be the guest's root) and returns its bytes. Takes a few seconds under TCG.
 */
export async function buildSnapshotInGuest(
  client: AgentClient,
  nodeFlags: string[] = DEFAULT_NODE_FLAGS,
  opts: { runtimeDisk?: string } = {},
): Promise<Buffer> {
  const blob = '/tmp/.smolvm-agent.blob';
  const script = [
    // An image whose node is on the runtime disk (AgentImage.runtimeDiskId): mounted here again.
    ...(opts.runtimeDisk ? mountRuntime(opts.runtimeDisk) : []),
    `${NODE_PATH} ${nodeFlags.join(' ')} --snapshot-blob ${blob} --build-snapshot ${BUNDLE_PATH} >&2 && cat ${blob} && rm -f ${blob}`,
  ].join('\n');
  const session = await client.exec({
    argv: ['/bin/sh', '-c', script],
    env: {
      SMOLVM_AGENT_DIR: path.dirname(BUNDLE_PATH),
      LD_LIBRARY_PATH: '/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:/lib64:/usr/lib64:/lib:/usr/lib',
    },
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  session.stdout.on('data', (c: Buffer) => out.push(c));
  session.stderr.on('data', (c: Buffer) => err.push(c));
  const exit = await session.exit;
  await Promise.all([ended(session.stdout), ended(session.stderr)]);
  if (exit.code !== 0) {
    throw new SmolvmError(
      `building the agent snapshot in the guest failed (${exit.signal ?? `exit ${exit.code}`}): ${Buffer.concat(err).toString().trim().slice(-400)}`,
    );
  }
  return Buffer.concat(out);
}

function ended(stream: NodeJS.ReadableStream): Promise<void> {
  return new Promise((resolve) => {
    if ((stream as { readableEnded?: boolean }).readableEnded) resolve();
    else stream.once('end', () => resolve());
  });
}

/** Where to keep a guest-built blob: per plain image and guest CPU model (e.g. `tcg-max`, `kvm-host-<hash>`). */
export function snapshotBlobPath(cacheDir: string, plainImageKey: string, cpuModel: string): string {
  return path.join(cacheDir, 'agent', `${plainImageKey}.${cpuModel.replace(/[^A-Za-z0-9_.-]/g, '_')}.blob`);
}
