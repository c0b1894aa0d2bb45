// Names both the host-side image builder and the guest agent rely on: the boot contract's
// fixed points. Changing one is a change of the agent image format.

/** The virtio-serial port (QEMU `virtserialport,name=`) the agent serves the protocol on. */
export const AGENT_PORT_NAME = 'smolvm.agent';

/** Directory in the agent image holding node, the agent bundle, koffi and the snapshot blob. */
export const AGENT_DIR = '/opt/smolvm';

/** Present only in the agent image: the agent refuses privileged operations (mount, reboot) without it. */
export const AGENT_IMAGE_MARKER = '/etc/smolvm-agent-image';

/** Where the agent assembles the guest root before it chroots into it. */
export const GUEST_RUN_DIR = '/run/smolvm';
