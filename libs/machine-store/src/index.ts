// Public API of @smolvm/machine-store: Records of named machines on disk: validated names, crash-safe writes, per-machine locks
export {};
