// Public API of @smolvm/machines: Persistent machines: disks, the per-VM supervisor process and its socket, lifecycle (create/start/stop/delete/status), exec, cp and monitor
export {};
