// A cpio "newc" archive writer: the format Linux unpacks as an initramfs. Written here so test
// guests need neither root (device nodes are just header fields) nor the cpio tool.
export type CpioEntry =
  | { kind: 'dir'; path: string; mode?: number }
  | { kind: 'file'; path: string; data: Buffer | string; mode?: number }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'chardev'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

export function cpioNewc(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const entry of entries) {
    const name = entry.path.replace(/^\/+/, '') || '.';
    let mode: number;
    let data: Buffer = Buffer.alloc(0);
    let rdev: [number, number] = [0, 0];
    switch (entry.kind) {
      case 'dir':
        mode = S_IFDIR | (entry.mode ?? 0o755);
        break;
      case 'file':
        mode = S_IFREG | (entry.mode ?? 0o644);
        data = Buffer.isBuffer(entry.data) ? entry.data : Buffer.from(entry.data);
        break;
      case 'symlink':
        mode = S_IFLNK | 0o777;
        data = Buffer.from(entry.target);
        break;
      case 'chardev':
        mode = S_IFCHR | (entry.mode ?? 0o600);
        rdev = [entry.major, entry.minor];
        break;
    }
    parts.push(header(ino++, mode, data.length, rdev, name), data, pad(data.length));
  }
  parts.push(header(0, 0, 0, [0, 0], 'TRAILER!!!'));
  return Buffer.concat(parts);
}

function header(ino: number, mode: number, size: number, rdev: [number, number], name: string): Buffer {
  const nameBytes = Buffer.from(name + '\0');
  const fields = [ino, mode, 0, 0, 1, 0, size, 0, 0, rdev[0], rdev[1], nameBytes.length, 0];
  const head = Buffer.from('070701' + fields.map((n) => n.toString(16).padStart(8, '0')).join(''), 'ascii');
  // The name is padded so that header + name ends on a 4-byte boundary.
  return Buffer.concat([head, nameBytes, pad(head.length + nameBytes.length)]);
}

function pad(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}
