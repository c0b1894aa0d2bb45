// Public API of @smolvm/guest-agent: The agent that runs inside every VM: serves exec, setup, time and shutdown requests over the virtio-serial port
export {};
