// The agent image's layout and its /init. Both are part of the image format: changing either
// changes FORMAT_VERSION (and so the cache key).
import { AGENT_DIR, AGENT_IMAGE_MARKER } from '@smolvm/agent-protocol';

/** 2: node is shipped without its symbol table (stripped). */
export const FORMAT_VERSION = 2;

export { AGENT_DIR, AGENT_IMAGE_MARKER };

export const NODE_PATH = `${AGENT_DIR}/node`;
export const BUNDLE_PATH = `${AGENT_DIR}/agent.js`;
export const SNAPSHOT_PATH = `${AGENT_DIR}/agent.blob`;
/** With a runtime (runtime.ts): the erofs holding the guest's node, and where /init mounts it. */
export const RUNTIME_EROFS_PATH = `${AGENT_DIR}/runtime.erofs`;
export const RUNTIME_MOUNT = `${AGENT_DIR}/runtime`;

/** Empty directories the image provides as mount points. */
export const MOUNT_POINTS = ['proc', 'sys', 'dev', 'run', 'tmp', 'mnt', 'root', 'home', 'var', 'workspace'];

export interface InitOptions {
  /** Start node from the V8 startup snapshot blob instead of parsing the bundle. */
  snapshot: boolean;
  /** Extra V8/node flags, e.g. --jitless (a snapshot only loads under the flags it was built with). */
  nodeFlags: string[];
  /** Library directories node's dependencies were copied to. */
  libraryDirs: string[];
  /** Node is read from the disk with this serial (runtime.ts): mounted before the agent starts. */
  runtimeDisk?: string;
}

/**
 * PID 1 is busybox sh, not node: it mounts the API filesystems, runs the agent and, while it
 * waits for it, reaps orphaned processes (node as PID 1 would leave zombies: libuv only waits for
 * its own children). If the agent dies, the VM ends instead of hanging.
 */
export function initScript(opts: InitOptions): string {
  const flags = opts.nodeFlags.length ? `${opts.nodeFlags.join(' ')} ` : '';
  const run = (entry: string) =>
    `SMOLVM_AGENT_DIR=${AGENT_DIR} LD_LIBRARY_PATH=${opts.libraryDirs.join(':')} ${NODE_PATH} ${flags}${entry}`;
  // A blob only loads on a CPU with the features it was built on (V8 folds them into the
  // snapshot's tag); node exits 14 otherwise, and the plain bundle takes over.
  const agent = opts.snapshot
    ? [run(`--snapshot-blob ${SNAPSHOT_PATH}`), '[ $? -eq 14 ] && ' + run(BUNDLE_PATH)]
    : [run(BUNDLE_PATH)];
  return [
    '#!/bin/busybox sh',
    '# smolvm agent image init (PID 1): API filesystems, then the agent; reaps orphans while waiting.',
    '/bin/busybox mount -t proc -o nosuid,nodev,noexec proc /proc',
    '/bin/busybox mount -t sysfs -o nosuid,nodev,noexec sysfs /sys',
    '/bin/busybox mount -t tmpfs -o nosuid,nodev,mode=0755 run /run',
    ...(opts.runtimeDisk ? mountRuntime(opts.runtimeDisk) : []),
    ...agent,
    'echo "smolvm: agent exited ($?); powering off" >/dev/console',
    '/bin/busybox reboot -f',
    '',
  ].join('\n');
}

/**
 * Finds the runtime disk by its serial and mounts the node erofs with it as its second device;
 * without it there is no node, so the VM ends at once with a line on the console. (Also how a
 * blob build finds node: an exec's root does not see the mounts under the image's root.)
 */
export function mountRuntime(serial: string): string[] {
  return [
    `for b in /sys/block/vd*; do [ "$(/bin/busybox cat $b/serial 2>/dev/null)" = ${serial} ] && rt=/dev/\${b##*/}; done`,
    `/bin/busybox mount -t erofs -o ro,loop,device=$rt ${RUNTIME_EROFS_PATH} ${RUNTIME_MOUNT} || {`,
    `  echo "smolvm: the runtime disk ${serial} (\${rt:-missing}) does not mount; powering off" >/dev/console`,
    '  /bin/busybox reboot -f',
    '}',
  ];
}

export const PASSWD = 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n';
export const GROUP = 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n';
