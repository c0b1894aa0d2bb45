// Public API of @smolvm/agent-protocol: Host<->guest agent protocol: framing, handshake, requests, multiplexed flow-controlled streams; AgentClient (host) and AgentServer (guest)
export {};
