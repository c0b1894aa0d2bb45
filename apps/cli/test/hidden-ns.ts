// Runs a program the way a user without Node or a smolvm checkout would: in a mount namespace
// where every node and the checkout are bound over by an empty file and an empty dir (the script
// checks both are really gone), with a clean environment, optionally as another user.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const CHECKOUT = path.resolve(__dirname, '..', '..', '..');

export interface HiddenResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface HiddenOptions {
  /** HOME of the run (made by the caller); XDG_RUNTIME_DIR is `<home>/run`. */
  home: string;
  uid?: number;
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** Every node on PATH (and the one running jest), to hide. */
function nodes(): string[] {
  const found = spawnSync('sh', ['-c', 'which -a node nodejs'], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter(Boolean);
  return [...new Set([...found, process.execPath].map((p) => fs.realpathSync(p)))];
}

/**
 * `scratch`: a directory of the test's own, where the empty file and dir are made. Returns the
 * `unshare` command line that runs `argv` hidden (for a test that spawns it itself, e.g. under
 * script(1) for a pty).
 */
export function hiddenCommand(scratch: string): (argv: string[], opts: HiddenOptions) => string[] {
  const emptyFile = path.join(scratch, 'empty-file');
  const emptyDir = path.join(scratch, 'empty-dir');
  fs.writeFileSync(emptyFile, '', { mode: 0o644 });
  fs.mkdirSync(emptyDir, { mode: 0o755, recursive: true });
  const binds = [...nodes().map((n) => `mount --bind ${emptyFile} ${n}`), `mount --bind ${emptyDir} ${CHECKOUT}`];
  return (argv, opts) => {
    const env = {
      HOME: opts.home,
      XDG_RUNTIME_DIR: path.join(opts.home, 'run'),
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      SMOLVM_NO_TCG_WARNING: '1',
      ...opts.env,
    };
    const as = opts.uid ? `setpriv --reuid=${opts.uid} --regid=${opts.uid} --clear-groups ` : '';
    const script = [
      'set -e',
      ...binds,
      'if node -e 0 2>/dev/null; then echo "node still runs" >&2; exit 97; fi',
      `if [ -n "$(ls -A ${CHECKOUT})" ]; then echo "checkout still visible" >&2; exit 98; fi`,
      `exec ${as}env -i ${Object.entries(env)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')} "$@"`,
    ].join('\n');
    return ['unshare', '-m', '--propagation', 'private', 'sh', '-c', script, 'sh', ...argv];
  };
}

/** Runs `argv` hidden (see hiddenCommand) and waits for it. */
export function hiddenRunner(scratch: string): (argv: string[], opts: HiddenOptions) => HiddenResult {
  const command = hiddenCommand(scratch);
  return (argv, opts) => {
    const [file, ...args] = command(argv, opts);
    const r = spawnSync(file, args, { encoding: 'utf8', timeout: opts.timeoutMs ?? 600_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
}

/** A HOME (with its run dir) under `scratch`, owner-only, owned by `uid`. */
export function makeHome(scratch: string, name: string, uid = 0): string {
  const home = path.join(scratch, name);
  fs.mkdirSync(path.join(home, 'run'), { recursive: true, mode: 0o700 });
  fs.chmodSync(home, 0o700);
  if (uid !== 0) {
    fs.chownSync(home, uid, uid);
    fs.chownSync(path.join(home, 'run'), uid, uid);
  }
  return home;
}

/** Processes whose command line names `scratch` (none may be left when a test ends); killed. */
export function killLeftovers(scratch: string): string[] {
  const left = spawnSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((l) => l.includes(scratch) && !l.includes('ps -eo'));
  for (const line of left) process.kill(Number(line.trim().split(/\s+/)[0]), 'SIGKILL');
  return left;
}
