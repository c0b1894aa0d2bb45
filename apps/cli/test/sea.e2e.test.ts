// The single-file smolvm (dist/smolvm, tools/sea/build.ts) is all a user needs besides QEMU:
// run from a copy of that one file, in a mount namespace where node and the checkout are
// hidden, with a fresh HOME, it boots bare VMs with the kernel, agent, busybox, koffi, node and
// Debian base it carries; a second, unprivileged user on the same host does the same from the
// same file.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hiddenRunner, killLeftovers, makeHome, type HiddenOptions, type HiddenResult } from './hidden-ns';

const SEA = path.join(__dirname, '..', 'dist', 'smolvm');
const NOBODY = 65534;
const BOOT_MS = 600_000;

describe('single-file smolvm (node and the checkout hidden)', () => {
  let dir: string;
  let exe: string;
  let run: (argv: string[], opts: HiddenOptions) => HiddenResult;

  beforeAll(() => {
    expect(fs.existsSync(SEA)).toBe(true); // built by the test target's build-sea dependency
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-sea-e2e-'));
    fs.chmodSync(dir, 0o755);
    fs.mkdirSync(path.join(dir, 'bin'), { mode: 0o755 });
    exe = path.join(dir, 'bin', 'smolvm');
    fs.copyFileSync(SEA, exe);
    fs.chmodSync(exe, 0o755);
    run = hiddenRunner(dir);
  });

  afterAll(() => {
    const left = killLeftovers(dir);
    fs.rmSync(dir, { recursive: true, force: true });
    expect(left).toEqual([]);
  });

  const home = (name: string, uid = 0): string => makeHome(dir, name, uid);
  const hidden = (args: string[], opts: HiddenOptions): HiddenResult => run([exe, ...args], opts);

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
      expect(fs.readdirSync(path.join(sea, extracted)).sort()).toEqual([
        '.complete',
        'agent.js',
        'base',
        'busybox',
        'node',
        'node_modules',
        'vmlinux',
      ]);
      expect(fs.readdirSync(path.join(sea, extracted, 'base')).sort()).toEqual([
        'base.json',
        expect.stringMatching(/^debian-[0-9a-f]+\.tar\.zst$/),
      ]);
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
      const created = hidden(['machine', 'create', 'm1'], { home: h });
      expect(created).toMatchObject({ status: 0 });
      // Pinned to the base the executable carries, like the set-up's own.
      expect(created.stderr).toMatch(/created machine "m1" \(smolvm\.internal\/base:debian-bookworm-[0-9a-f]+,/);
      const images = JSON.parse(hidden(['machine', 'images', '--name', 'm1', '--json'], { home: h }).stdout) as Array<{
        image: string;
        digest: string;
        inStore: boolean;
      }>;
      expect(images[0]).toMatchObject({
        image: expect.stringMatching(/^smolvm\.internal\/base:/),
        digest: expect.stringMatching(/^sha256:/),
        inStore: true,
      });
      try {
        const start = hidden(['machine', 'start', '--name', 'm1'], { home: h });
        expect(start).toMatchObject({ status: 0 });
        expect(start.stderr).toMatch(/^machine "m1" started in /);
        const exec = hidden(
          ['machine', 'exec', '--name', 'm1', '--', 'sh', '-c', 'echo kept > /workspace/f; cat /etc/hostname'],
          { home: h },
        );
        expect(exec).toMatchObject({ status: 0, stdout: 'm1\n' });
      } finally {
        expect(hidden(['machine', 'stop', '--name', 'm1'], { home: h })).toMatchObject({ status: 0 });
      }
    },
    BOOT_MS,
  );

  it('serves the HTTP API from the bundle it carries (smolvm serve openapi)', () => {
    const r = hidden(['serve', 'openapi'], { home: home('home-root') });
    expect(r).toMatchObject({ status: 0, stderr: '' });
    const doc = JSON.parse(r.stdout) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toContain('/api/v1/machines');
  });

  it(
    'a second, unprivileged user runs it from the same file',
    () => {
      const h = home('home-nobody', NOBODY);
      // One cold boot (no agent snapshot, no boot snapshot) keeps this short: the kernel, agent
      // and node come from the executable all the same.
      const r = hidden(['machine', 'run', '--cold', '--', 'id', '-u'], {
        home: h,
        uid: NOBODY,
        env: { SMOLVM_AGENT_SNAPSHOT: '0' },
      });
      expect(r).toMatchObject({ status: 0, stdout: '0\n', stderr: '' });
      const sea = path.join(h, '.cache', 'smolvm', 'sea');
      const [extracted] = fs.readdirSync(sea);
      expect(fs.statSync(path.join(sea, extracted, 'vmlinux')).uid).toBe(NOBODY);
    },
    BOOT_MS,
  );
});
