// Issue 14, hostile guest against its shares: a guest given a host directory (a volume, a
// persistent machine's inbox) must never leave anything there that is dangerous on the host
// (setuid/setgid files, device nodes, symlinks, files owned by someone else), and the QEMU
// serving those shares runs in a seccomp jail without privileges to spare. Real VMs (TCG here),
// the built CLI, run as the README's set-up does (root); the checks hold for any user.
import fs from 'node:fs';
import path from 'node:path';
import { e2eSetup, smolvm, startSmolvm, type CliResult, type E2eSetup } from '../helpers';

jest.setTimeout(900_000);

let setup: E2eSetup;
let home: string;
let env: NodeJS.ProcessEnv;

const SHAPE = ['--cpus', '1', '--memory', '256'];
const MACHINE = 'shares';

function cli(args: string[]): CliResult {
  return smolvm(args, env, undefined, 300_000);
}

/** Every way a guest might plant something on the host through a writable share at /mnt. */
const PLANT = [
  'cp /bin/busybox /mnt/suid && chmod 4755 /mnt/suid',
  'touch /mnt/sgid && chmod 2755 /mnt/sgid',
  'mkdir /mnt/sgdir && chmod 3777 /mnt/sgdir',
  'mknod /mnt/blk b 8 0',
  'mknod /mnt/chr c 1 3',
  'mkfifo /mnt/fifo',
  'touch /mnt/owned && chown 1234:1234 /mnt/owned',
  'chown 1234:1234 /mnt/host.txt',
  'chmod 6777 /mnt/host.txt',
  'ln -s /etc/shadow /mnt/link',
  // The guest keeps its own view: what it did is what it sees.
  'stat -c "%n %a %u:%g %F" /mnt/suid /mnt/owned /mnt/chr',
  // How the guest mounted the share.
  'grep " /mnt " /proc/mounts',
  'echo planted',
].join('; ');

function hostDir(name: string): string {
  const dir = path.join(home, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'host.txt'), 'host file\n', { mode: 0o644 });
  fs.chmodSync(path.join(dir, 'host.txt'), 0o644);
  return dir;
}

/** What the host holds under `dir` that it should not: one line per offending entry. */
function dangerous(dir: string): string[] {
  const found: string[] = [];
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const walk = (d: string) => {
    for (const name of fs.readdirSync(d)) {
      const p = path.join(d, name);
      const st = fs.lstatSync(p);
      const rel = path.relative(dir, p);
      if (!st.isFile() && !st.isDirectory())
        found.push(`${rel}: not a plain file or directory (mode ${st.mode.toString(8)})`);
      if (st.mode & 0o6000) found.push(`${rel}: setuid/setgid (mode ${(st.mode & 0o7777).toString(8)})`);
      if (st.uid !== uid || st.gid !== gid) found.push(`${rel}: owned by ${st.uid}:${st.gid}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return found;
}

function expectHostUntouched(dir: string): void {
  expect(dangerous(dir)).toEqual([]);
  const host = fs.statSync(path.join(dir, 'host.txt'));
  expect((host.mode & 0o7777).toString(8)).toBe('644');
  expect(fs.readFileSync(path.join(dir, 'host.txt'), 'utf8')).toBe('host file\n');
}

/** The status lines of process `pid` that say how confined it is, and its argv; undefined once gone. */
function confinement(pid: number): { status: Record<string, string>; argv: string[] } | undefined {
  try {
    const status: Record<string, string> = {};
    for (const line of fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
      const [key, value] = line.split(':\t');
      if (['Seccomp', 'NoNewPrivs', 'CapEff', 'CapPrm', 'CapBnd'].includes(key)) status[key] = value.trim();
    }
    return { status, argv: fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean) };
  } catch {
    return undefined;
  }
}

/**
 * QEMU `pid` once it installed its seccomp filter (early in its start-up, before the guest runs),
 * or as last seen before it ended without one: a `machine run` QEMU, which ends with its run.
 * The pid is setpriv's until it execs QEMU.
 */
async function settled(pid: number): Promise<{ status: Record<string, string>; argv: string[] }> {
  let last = confinement(pid);
  for (;;) {
    const now = confinement(pid);
    if (!now) break;
    last = now;
    if (path.basename(now.argv[0]).startsWith('qemu-system') && now.status.Seccomp === '2') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!last) throw new Error(`QEMU ${pid} ended before it could be looked at`);
  return last;
}

/** `running`: a QEMU known to be up (a started machine's): looked at once. */
async function expectConfined(pid: number, running = false): Promise<void> {
  const seen = running ? confinement(pid) : await settled(pid);
  if (!seen) throw new Error(`QEMU ${pid} is gone`);
  const { status, argv } = seen;
  expect(status.Seccomp).toBe('2');
  expect(status.NoNewPrivs).toBe('1');
  if (process.getuid?.() === 0) {
    // Root's QEMU keeps no capability at all (not even in its bounding set).
    expect([status.CapEff, status.CapPrm, status.CapBnd]).toEqual([
      '0000000000000000',
      '0000000000000000',
      '0000000000000000',
    ]);
  }
  expect(argv).toContain('-sandbox');
  expect(argv[argv.indexOf('-sandbox') + 1].split(',').sort()).toEqual([
    'elevateprivileges=deny',
    'obsolete=deny',
    'on',
    'resourcecontrol=deny',
    'spawn=deny',
  ]);
  expect(argv.filter((a) => a.includes('exec:'))).toEqual([]);
}

/** A QEMU process of this file (one VM at a time runs here). */
function aQemu(): number | undefined {
  const line = setup.qemus()[0];
  return line === undefined ? undefined : Number(line.trim().split(/\s+/)[0]);
}

async function until<T>(what: string, get: () => T | undefined, ms = 120_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = get();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  setup = await e2eSetup('smolvm-shares-e2e-');
  ({ home, env } = setup);
});

afterAll(async () => {
  cli(['machine', 'delete', MACHINE, '-f']);
  expect(setup.qemus()).toEqual([]);
  await setup.close();
});

describe('a volume (-v) of machine run', () => {
  it('never gets a setuid/setgid file, a device node, a symlink or a file owned by another user', () => {
    const dir = hostDir('volume');
    const r = cli(['machine', 'run', ...SHAPE, '-v', `${dir}:/mnt`, '--', 'sh', '-c', PLANT]);
    expect(r.stdout).toContain('planted');
    expectHostUntouched(dir);
    // Every attempt succeeded as far as the guest can tell, and it sees what it did.
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('/mnt/suid 4755 0:0 regular file');
    expect(r.stdout).toContain('/mnt/owned 644 1234:1234 regular');
    expect(r.stdout).toContain('/mnt/chr 644 0:0 character special file');
    // The guest's files are all there, with their contents (a copy of busybox).
    expect(fs.statSync(path.join(dir, 'suid')).size).toBeGreaterThan(100_000);
    // What the guest sees of a share (modes, device numbers) a host user may have set: it never
    // grants setuid or device access inside the guest either.
    expect(r.stdout).toMatch(/ \/mnt 9p \S*\bnosuid,nodev\b/);
  });
});

describe('a persistent machine', () => {
  it('its volume and its inbox get nothing dangerous either; its QEMU is confined', async () => {
    const dir = hostDir('machine-volume');
    expect(
      cli(['machine', 'create', MACHINE, ...SHAPE, '--storage', '1', '--overlay', '1', '-v', `${dir}:/mnt`]).status,
    ).toBe(0);
    try {
      expect(cli(['machine', 'start', '--name', MACHINE]).status).toBe(0);
      const planted = cli(['machine', 'exec', '--name', MACHINE, '--', 'sh', '-c', PLANT]);
      expect(planted.stdout).toContain('planted');
      expectHostUntouched(dir);

      // The inbox is read-only to the guest: none of the same attempts gets through.
      const inbox = path.join(home, 'data', 'machines', MACHINE, 'inbox');
      const before = fs.statSync(inbox);
      const tries = cli([
        'machine',
        'exec',
        '--name',
        MACHINE,
        '--',
        'sh',
        '-c',
        PLANT.replace(/\/mnt/g, '/run/smolvm-inbox'),
      ]);
      expect(tries.stdout).not.toContain('/run/smolvm-inbox/suid 4755');
      expect(fs.readdirSync(inbox)).toEqual([]);
      const after = fs.statSync(inbox);
      expect([after.mode, after.uid, after.gid]).toEqual([before.mode, before.uid, before.gid]);

      const record = JSON.parse(
        fs.readFileSync(path.join(home, 'data', 'machines', MACHINE, 'machine.json'), 'utf8'),
      ) as { runtime: { vm: { pid: number } } };
      await expectConfined(record.runtime.vm.pid, true);
    } finally {
      // The next test counts on no other VM of this file running.
      cli(['machine', 'delete', MACHINE, '-f']);
    }
  });
});

describe('QEMU of machine run', () => {
  it('runs in a seccomp jail, without capabilities or new privileges, and never migrates through exec:', async () => {
    // The first run of the shape saves its snapshot (the boot it saves from is a QEMU too).
    const first = startSmolvm(['machine', 'run', ...SHAPE, '--', 'sleep', '20'], env);
    try {
      await expectConfined(await until('the cold-booted QEMU', () => aQemu()));
    } finally {
      expect((await first.done).status).toBe(0);
    }

    // Restored; the next identical invocation is started early from the recipe this one leaves.
    for (let i = 0; i < 2; i++) {
      const timings = path.join(home, `timings-${i}.json`);
      const vm = startSmolvm(['machine', 'run', ...SHAPE, '--', 'sleep', '20'], { ...env, SMOLVM_TIMINGS: timings });
      try {
        await expectConfined(await until('the restored QEMU', () => aQemu()));
      } finally {
        await vm.done;
      }
      const r = await vm.done;
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const t = JSON.parse(fs.readFileSync(timings, 'utf8')) as { restored: boolean; earlyStart: number | null };
      expect(t.restored).toBe(true);
      // The second was started early, from the recipe: that path passes the state file too.
      if (i === 1) expect(t.earlyStart).not.toBeNull();
    }
    const recipes = path.join(home, 'cache', 'prestart');
    const texts = fs.readdirSync(recipes).map((f) => fs.readFileSync(path.join(recipes, f), 'utf8'));
    expect(texts.length).toBeGreaterThan(0);
    expect(texts.filter((t) => t.includes('exec:'))).toEqual([]);
  });
});
