// The conformance guest's /init: a stand-in for the agent so the suite tests drivers, not the
// agent. It signals READY on the `smolvm.agent` port, then runs one shell command per line and
// answers with `OUT <line>`... and `EXIT <status>`. With `smolvm.conformance.reconnect` on the
// kernel command line it greets every new host after the previous one left (snapshot restore).
export const CONFORMANCE_INIT = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /mnt /sbin /usr/bin /usr/sbin
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "conformance-init: started"
port=
for d in /sys/class/virtio-ports/*; do
  [ "$(cat "$d/name" 2>/dev/null)" = smolvm.agent ] && port="/dev/\${d##*/}"
done
if [ -z "$port" ]; then
  echo "conformance-init: no virtio port named smolvm.agent"
  reboot -f
fi
serve() {
  while IFS= read -r line <&3; do
    sh -c "$line" </dev/null >/tmp/out 2>&1
    rc=$?
    while IFS= read -r l || [ -n "$l" ]; do echo "OUT $l"; done </tmp/out >&3
    echo "EXIT $rc" >&3
  done
}
exec 3<>"$port"
echo READY >&3
serve
# The snapshot test saves this VM after its host left: wait for the next host (the port opens at
# once, a write blocks until a host is connected) and greet it, as the real agent does.
while grep -q smolvm.conformance.reconnect /proc/cmdline; do
  exec 3<&-
  sleep 0.02
  exec 3<>"$port" && echo READY >&3 && serve
done
echo "conformance-init: channel closed"
reboot -f
`;

/** An init that exits at once: the kernel panics ("Attempted to kill init"). */
export const PANIC_INIT = `#!/bin/busybox sh
echo "conformance-init: exiting on purpose"
exit 3
`;
