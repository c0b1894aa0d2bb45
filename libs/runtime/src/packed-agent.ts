// A pack's agent image with the agent's V8 startup blob in it. A restored guest whose agent
// started from a blob greets ~70 ms sooner than one whose agent parsed its bundle (measured on
// `machine create --from` starts: restore 108-142 ms against 42-69 ms for the same image from the
// store), so packs carry one, built as the plain image's is: in a VM of the pack's own agent image,
// kernel and runtime, on this host's guest CPU. On another CPU model node refuses the blob (exit
// 14) and the image's /init starts the bundle instead, as a pack without a blob always did.
import type { AgentImage, AgentImageOptions } from '@smolvm/agent-image';
import { selectDriver } from '@smolvm/driver-api';
import { guestCpuOf, withGuestBlob } from './agent-blob';
import type { DiskRange } from './layout';
import { startVm } from './start';

export interface PackedAgentInputs {
  /** The kernel the pack ships. */
  kernel: string;
  /** The executable whose Node the agent image runs on (AgentImageOptions.runtime), if it has one. */
  runtime?: { path: string; range?: DiskRange; sha256: string };
}

/**
 * `plain` (an image ensureAgentImage built from `imageOptions`) with the blob baked in; `plain`
 * itself when no VM can be started here or the build fails (a pack without a blob still works).
 * The blob is cached per image and guest CPU, like the plain image's.
 */
export async function packedAgentImageWithBlob(
  plain: AgentImage,
  imageOptions: AgentImageOptions,
  inputs: PackedAgentInputs,
  env: NodeJS.ProcessEnv = process.env,
): Promise<AgentImage> {
  if (env.SMOLVM_AGENT_SNAPSHOT === '0') return plain;
  try {
    const { driver, probe } = await selectDriver({ env });
    return await withGuestBlob(plain, imageOptions, guestCpuOf(driver.name, probe), () =>
      startVm({
        packed: {
          kernel: inputs.kernel,
          agentImage: { path: plain.path, key: plain.key },
          ...(inputs.runtime ? { runtime: inputs.runtime } : {}),
        },
        cpus: 1,
        memoryMiB: 1024,
        bootSnapshot: false,
        env,
      }),
    );
  } catch {
    return plain;
  }
}
