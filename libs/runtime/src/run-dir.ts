// A private directory per VM for its sockets and console log. Unix socket paths must stay under
// 108 bytes, so it lives under a short runtime root rather than the (possibly deep) data dir.
// Each records its owner; a directory whose owner died (SIGKILL) is swept by the next run.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SmolvmError, currentProcessIdentity, isProcessAlive, type ProcessIdentity } from '@smolvm/common';

const OWNER_FILE = 'owner.json';

export function runRoot(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg && path.isAbsolute(xdg) && fs.existsSync(xdg)) return path.join(xdg, 'smolvm');
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return path.join(os.tmpdir(), `smolvm-${uid}`);
}

/** Creates the root 0700 and refuses one that another user could have planted. */
function ensurePrivateRoot(root: string): void {
  fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(root);
  const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new SmolvmError(`${root} is not a private directory of this user`, {
      remedy: `remove it (rm -rf ${root}) and try again`,
    });
  }
}

function ownerOf(dir: string): ProcessIdentity | undefined {
  try {
    const owner = JSON.parse(fs.readFileSync(path.join(dir, OWNER_FILE), 'utf8')) as ProcessIdentity;
    return typeof owner.pid === 'number' ? owner : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Removes run dirs whose owner process is gone; a dir without an owner file is left alone for a minute (it is being
 * made).
 */
export function sweepRunDirs(root: string): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(root);
  } catch {
    return removed;
  }
  for (const name of names) {
    const dir = path.join(root, name);
    const owner = ownerOf(dir);
    const stale = owner
      ? !isProcessAlive(owner)
      : Date.now() - (fs.statSync(dir, { throwIfNoEntry: false })?.mtimeMs ?? Date.now()) > 60_000;
    if (stale) {
      fs.rmSync(dir, { recursive: true, force: true });
      removed.push(dir);
    }
  }
  return removed;
}

export interface RunDir {
  path: string;
  remove(): void;
}

export function createRunDir(prefix: string, env: NodeJS.ProcessEnv = process.env): RunDir {
  const root = runRoot(env);
  ensurePrivateRoot(root);
  sweepRunDirs(root);
  const dir = fs.mkdtempSync(path.join(root, `${prefix}-`));
  fs.writeFileSync(path.join(dir, OWNER_FILE), JSON.stringify(currentProcessIdentity()), { mode: 0o600 });
  return { path: dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}
