// The Node runtime inside a single executable, as a plain `node`: the same binary with the SEA
// fuse reset, so it runs scripts and takes node/V8 flags instead of starting the embedded app.
// The guest agent runs on it (the agent image needs a node, and this one is already here).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SmolvmError } from '@smolvm/common';

// Split so that this bundle, embedded in the executable, does not hold the sentinel itself.
const FUSE = ['NODE_SEA_FUSE', 'fce680ab2cc467b6e072b8b5df1996b2'].join('_') + ':';

/** Offset of the fuse's flag byte ('0' or '1') in the binary, or -1 if it has none. */
export function fuseOffset(binary: Buffer): number {
  const at = binary.indexOf(FUSE, 0, 'latin1');
  return at < 0 ? -1 : at + FUSE.length;
}

/**
 * `<dir>/node`: a copy of `executable` with the fuse flag set to '0', made once (temp + rename,
 * so racing processes each rename a whole, identical file).
 */
export function plainNode(executable: string, dir: string): string {
  const target = path.join(dir, 'node');
  if (fs.existsSync(target)) return target;
  const binary = fs.readFileSync(executable);
  const at = fuseOffset(binary);
  if (at < 0 || (binary[at] !== 0x31 && binary[at] !== 0x30)) {
    throw new SmolvmError(`${executable} has no single-executable fuse`, {
      remedy: 'rebuild it with tools/sea/build (npx nx build-sea cli)',
    });
  }
  binary[at] = 0x30;
  const tmp = path.join(dir, `.node.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  try {
    fs.writeFileSync(tmp, binary, { mode: 0o700, flag: 'wx' });
    const fd = fs.openSync(tmp, 'r');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, target);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  return target;
}
