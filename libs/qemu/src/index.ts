// Public API of @smolvm/qemu: Shared QEMU launcher: argv building, watchdog-supervised spawn, QMP client, console capture
export {};
