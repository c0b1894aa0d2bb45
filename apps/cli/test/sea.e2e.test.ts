// The single-file smolvm (dist/smolvm, tools/sea/build.ts) is all a user needs besides QEMU:
// run from a copy of that one file, in a mount namespace where node and the checkout are
// hidden, with a fresh HOME, it boots VMs with the kernel, agent, busybox, koffi and node it
// carries; a second, unprivileged user on the same host does the same from the same file.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const SEA = path.join(__dirname, '..', 'dist', 'smolvm');
const CHECKOUT = path.resolve(__dirname, '..', '..', '..');
const NOBODY = 65534;
const BOOT_MS = 600_000;

/** Every node on PATH (and the one running jest), to hide. */
function nodes(): string[] {
  const found = spawnSync('sh', ['-c', 'which -a node nodejs'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  return [...new Set([...found, process.execPath].map((p) => fs.realpathSync(p)))];
}

describe('single-file smolvm (node and the checkout hidden)', () => {
  let dir: string;
  let exe: string;

  beforeAll(() => {
    expect(fs.existsSync(SEA)).toBe(true); // built by the test target's build-sea dependency
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-sea-e2e-'));
    fs.chmodSync(dir, 0o755);
    fs.mkdirSync(path.join(dir, 'bin'), { mode: 0o755 });
    exe = path.join(dir, 'bin', 'smolvm');
    fs.copyFileSync(SEA, exe);
    fs.chmodSync(exe, 0o755);
    fs.writeFileSync(path.join(dir, 'empty-file'), '', { mode: 0o644 });
    fs.mkdirSync(path.join(dir, 'empty-dir'), { mode: 0o755 });
  });

  afterAll(() => {
    const left = spawnSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes(dir) && !l.includes('ps -eo'));
    for (const line of left) process.kill(Number(line.trim().split(/\s+/)[0]), 'SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
    expect(left).toEqual([]);
  });

  function home(name: string, uid = 0): string {
    const h = path.join(dir, name);
    fs.mkdirSync(path.join(h, 'run'), { recursive: true, mode: 0o700 });
    fs.chmodSync(h, 0o700);
    if (uid !== 0) {
      fs.chownSync(h, uid, uid);
      fs.chownSync(path.join(h, 'run'), uid, uid);
    }
    return h;
  }

  /** Runs the copied executable with node and the checkout bound over by empty ones, as `uid`, with a clean environment. */
  function hidden(args: string[], opts: { home: string; uid?: number; env?: Record<string, string> }): { status: number | null; stdout: string; stderr: string } {
    const binds = [...nodes().map((n) => `mount --bind ${dir}/empty-file ${n}`), `mount --bind ${dir}/empty-dir ${CHECKOUT}`];
    const env = {
      HOME: opts.home,
      XDG_RUNTIME_DIR: path.join(opts.home, 'run'),
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      SMOLVM_NO_TCG_WARNING: '1',
      ...opts.env,
    };
    const as = opts.uid ? `setpriv --reuid=${opts.uid} --regid=${opts.uid} --clear-groups ` : '';
    // The checks fail the script unless node really is gone and the checkout empty.
    const script = [
      'set -e',
      ...binds,
      'if node -e 0 2>/dev/null; then echo "node still runs" >&2; exit 97; fi',
      `if [ -n "$(ls -A ${CHECKOUT})" ]; then echo "checkout still visible" >&2; exit 98; fi`,
      `exec ${as}env -i ${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')} ${exe} "$@"`,
    ].join('\n');
    const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', ...args], { encoding: 'utf8', timeout: BOOT_MS });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  it(
    'runs a command in a fresh VM with a fresh HOME: output and exit code',
    () => {
      const h = home('home-root');
      const r = hidden(['machine', 'run', '--', 'sh', '-c', 'echo hi from $(uname -r); exit 3'], { home: h });
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/^hi from \S+-smolvm\n$/);
      expect(r.status).toBe(3);
      // The assets went to this user's cache, owner-only.
      const sea = path.join(h, '.cache', 'smolvm', 'sea');
      const [extracted] = fs.readdirSync(sea);
      expect(fs.statSync(path.join(sea, extracted)).mode & 0o777).toBe(0o700);
      expect(fs.readdirSync(path.join(sea, extracted)).sort()).toEqual(['.complete', 'agent.js', 'busybox', 'node', 'node_modules', 'vmlinux']);
      // A second run is restored from the snapshot the first one saved.
      const again = hidden(['machine', 'run', '--', 'echo', 'again'], { home: h });
      expect(again).toMatchObject({ status: 0, stdout: 'again\n', stderr: '' });
    },
    BOOT_MS,
  );

  it(
    'a persistent machine: the supervisor is the executable itself',
    () => {
      const h = home('home-root');
      expect(hidden(['machine', 'create', 'm1'], { home: h })).toMatchObject({ status: 0 });
      try {
        const start = hidden(['machine', 'start', '--name', 'm1'], { home: h });
        expect(start).toMatchObject({ status: 0 });
        expect(start.stderr).toMatch(/^machine "m1" started in /);
        const exec = hidden(['machine', 'exec', '--name', 'm1', '--', 'sh', '-c', 'echo kept > /workspace/f; cat /etc/hostname'], { home: h });
        expect(exec).toMatchObject({ status: 0, stdout: 'm1\n' });
      } finally {
        expect(hidden(['machine', 'stop', '--name', 'm1'], { home: h })).toMatchObject({ status: 0 });
      }
    },
    BOOT_MS,
  );

  it(
    'a second, unprivileged user runs it from the same file',
    () => {
      const h = home('home-nobody', NOBODY);
      // One cold boot (no agent snapshot, no boot snapshot) keeps this short: the kernel, agent
      // and node come from the executable all the same.
      const r = hidden(['machine', 'run', '--cold', '--', 'id', '-u'], { home: h, uid: NOBODY, env: { SMOLVM_AGENT_SNAPSHOT: '0' } });
      expect(r).toMatchObject({ status: 0, stdout: '0\n', stderr: '' });
      const sea = path.join(h, '.cache', 'smolvm', 'sea');
      const [extracted] = fs.readdirSync(sea);
      expect(fs.statSync(path.join(sea, extracted, 'vmlinux')).uid).toBe(NOBODY);
    },
    BOOT_MS,
  );
});
