// What lives in a machine's directory besides machine.json.
import path from 'node:path';

export interface MachineFiles {
  /** ext4 holding the root overlay's upper layer: everything written outside /workspace. */
  overlayDisk: string;
  /** ext4 mounted at /workspace. */
  storageDisk: string;
  /** The supervisor's own log (boot, init output, how it ended). */
  supervisorLog: string;
  /** How the VM last ended (LastExit), written by the supervisor. */
  lastExit: string;
  /** Uploads staged by the supervisor, shared read-only with the guest (9p). */
  inbox: string;
  /** A machine made from a .smolmachine: the pack's digest and manifest (its sections, by sha256). */
  pack: string;
}

/** Where the guest sees the inbox. */
export const GUEST_INBOX = '/run/smolvm-inbox';

export function machineFiles(dir: string): MachineFiles {
  return {
    overlayDisk: path.join(dir, 'overlay.ext4'),
    storageDisk: path.join(dir, 'storage.ext4'),
    supervisorLog: path.join(dir, 'supervisor.log'),
    lastExit: path.join(dir, 'last-exit.json'),
    inbox: path.join(dir, 'inbox'),
    pack: path.join(dir, 'pack.json'),
  };
}
