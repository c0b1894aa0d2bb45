// State of one user that no other local user may read or steer. smolvm creates its directories
// 0700 and its files 0600 (a mode given to mkdir/open is masked by the umask, which only ever
// takes bits away, so this holds under any umask); and before it trusts a file it reads back to
// decide what to run (early-start recipes, the V8 code cache, machine records), it checks that
// only this user can have written it: whoever can write a directory can replace what is in it.
import fs from 'node:fs';
import path from 'node:path';
import { SmolvmError } from './errors';

/** A file or directory another user could have written or replaced. */
export class UntrustedPathError extends SmolvmError {
  readonly path: string;
  constructor(file: string, why: string) {
    super(`refusing ${file}: it ${why}`, {
      remedy: `remove it, or make it this user's own and writable only by this user (chown, chmod go-w); a SMOLVM_HOME shared with other users is not supported`,
    });
    this.path = file;
  }
}

function myUid(st: fs.Stats): number {
  return typeof process.getuid === 'function' ? process.getuid() : st.uid;
}

const WRITABLE_BY_OTHERS = 0o022;
const STICKY = 0o1000;

/**
 * Creates `dir` and its missing parents 0700. An existing `dir` of this user that others can
 * enter is tightened to 0700 (made by an older smolvm or under a lax umask); one that is a
 * symlink or another user's is refused (UntrustedPathError).
 */
export function ensurePrivateDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // A symlink of this user (or root) may move the directory elsewhere; what it points at must be ours.
  const link = fs.lstatSync(dir);
  if (link.isSymbolicLink() && link.uid !== myUid(link) && link.uid !== 0)
    throw new UntrustedPathError(dir, `is a symbolic link of uid ${link.uid}`);
  const st = link.isSymbolicLink() ? fs.statSync(dir) : link;
  if (!st.isDirectory())
    throw new SmolvmError(`${dir} is not a directory`, { remedy: `remove it (rm ${dir}) and try again` });
  if (st.uid !== myUid(st)) throw new UntrustedPathError(dir, `belongs to uid ${st.uid}`);
  if ((st.mode & 0o077) !== 0) fs.chmodSync(dir, 0o700);
}

/** Why `st` could let another user change what the path holds, or undefined when it cannot. */
function ownWeakness(st: fs.Stats): string | undefined {
  if (st.isSymbolicLink()) return 'is a symbolic link';
  if (st.uid !== myUid(st)) return `belongs to uid ${st.uid}`;
  if ((st.mode & WRITABLE_BY_OTHERS) !== 0) {
    const who = [st.mode & 0o020 && 'its group', st.mode & 0o002 && 'other users'].filter(Boolean).join(' and ');
    return `is writable by ${who} (mode ${(st.mode & 0o7777).toString(8)})`;
  }
  return undefined;
}

/**
 * Checks that no other user can have written `file` (a regular file, or a directory with
 * `kind: 'dir'`) under the state directory `root`: the path is absolute and normalised (no `..`)
 * and inside `root`; `root`, every directory between it and `file`, and `file` itself are no
 * symbolic links, belong to this user and are not writable by group or others; and every
 * directory above `root` (after resolving symlinks in it) belongs to this user or root and is
 * writable by others only with the sticky bit (like /tmp), so nobody can move `root` away.
 * Throws UntrustedPathError naming the first offender; a missing path throws lstat's ENOENT, one
 * of the wrong kind an error with code ENOTDIR or EINVAL. Costs one realpath and one lstat per
 * path component.
 */
export function assertTrustedPath(file: string, root: string, kind: 'file' | 'dir' = 'file'): void {
  if (!path.isAbsolute(file) || !path.isAbsolute(root)) throw new UntrustedPathError(file, 'is not an absolute path');
  if (path.normalize(file) !== file || file.split(path.sep).includes('..'))
    throw new UntrustedPathError(file, 'is not a normalised path');
  const rel = path.relative(root, file);
  if (rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel))
    throw new UntrustedPathError(file, `is outside ${root}`);
  const realRoot = fs.realpathSync(root);
  for (let dir = path.dirname(realRoot); ; dir = path.dirname(dir)) {
    const st = fs.lstatSync(dir);
    if (st.uid !== myUid(st) && st.uid !== 0) throw new UntrustedPathError(dir, `belongs to uid ${st.uid}`);
    if ((st.mode & WRITABLE_BY_OTHERS) !== 0 && (st.mode & STICKY) === 0) {
      throw new UntrustedPathError(
        dir,
        `is writable by others without the sticky bit (mode ${(st.mode & 0o7777).toString(8)})`,
      );
    }
    if (dir === path.dirname(dir)) break;
  }
  const parts = rel === '' ? [] : rel.split(path.sep);
  let current = realRoot;
  // Walked from the root down: an untrusted directory is named before anything inside it.
  for (let i = 0; i <= parts.length; i++) {
    if (i > 0) current = path.join(current, parts[i - 1]);
    const st = fs.lstatSync(current);
    const shown = i === 0 ? root : path.join(root, ...parts.slice(0, i));
    const weakness = ownWeakness(st);
    if (weakness) throw new UntrustedPathError(shown, weakness);
    const last = i === parts.length;
    // Not a question of trust but of kind: an error like the one opening it would raise.
    if (last ? (kind === 'dir' ? !st.isDirectory() : !st.isFile()) : !st.isDirectory()) {
      const wanted = last && kind === 'file' ? 'regular file' : 'directory';
      throw Object.assign(new Error(`${shown} is not a ${wanted}`), {
        code: wanted === 'directory' ? 'ENOTDIR' : 'EINVAL',
        path: shown,
      });
    }
  }
}
