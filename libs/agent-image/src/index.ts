// Public API of @smolvm/agent-image: Builds and caches the agent image (erofs: busybox, Node, the guest agent) and documents the guest boot contract
export {};
