// Warm starts end to end (issue 7): `machine run` restores a VM from the boot snapshot of its shape
// instead of booting it. Real VMs (TCG here), the built CLI, a local registry for images.
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { locateKernel } from '@smolvm/runtime';
import { buildImage, buildLayer, busyboxRootfs } from '../../../tools/fixtures/images';
import { CLI, e2eSetup, smolvm, smolvmAsync, type CliResult, type E2eSetup } from './helpers';
import { invocationKey, recipeFile, sameButRunDir } from '../src/prestart';

jest.setTimeout(600_000);

let setup: E2eSetup;
let home: string;
let runtimeDir: string;
let env: NodeJS.ProcessEnv;
let smallImage: string;
let bigImage: string;
const bigBlob = crypto.randomBytes(24 * 1024 * 1024);

const SHAPE = ['--cpus', '1', '--memory', '256'];

function run(args: string[], extraEnv: NodeJS.ProcessEnv = {}): CliResult {
  return smolvm(['machine', 'run', ...SHAPE, ...args], { ...env, ...extraEnv }, undefined, 300_000);
}

function runAsync(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return smolvmAsync(['machine', 'run', ...SHAPE, ...args], { ...env, ...extraEnv });
}

/** Runs with SMOLVM_TIMINGS and says whether the VM was restored. */
function restoredBy(args: string[], extraEnv: NodeJS.ProcessEnv = {}): { result: CliResult; restored: boolean } {
  const file = path.join(home, `timings-${crypto.randomBytes(4).toString('hex')}.json`);
  const result = run(args, { ...extraEnv, SMOLVM_TIMINGS: file });
  const restored = fs.existsSync(file) && (JSON.parse(fs.readFileSync(file, 'utf8')) as { restored: boolean }).restored;
  fs.rmSync(file, { force: true });
  return { result, restored };
}

const snapRoot = () => path.join(home, 'cache', 'vmsnap');
const snapshots = () => (fs.existsSync(snapRoot()) ? fs.readdirSync(snapRoot()).filter((n) => !n.startsWith('.')) : []);
const hidden = () => (fs.existsSync(snapRoot()) ? fs.readdirSync(snapRoot()).filter((n) => n.startsWith('.')) : []);

const qemuChildren = () => setup.qemus();

/** The snapshot directory of the default test shape (made by the first test). */
let baseSnapshot: string;

beforeAll(async () => {
  const small = buildImage(
    [
      buildLayer([
        ...busyboxRootfs(),
        { path: 'opt', type: 'dir' },
        { path: 'opt/data', type: 'dir' },
        { path: 'opt/data/a', type: 'file', content: 'data a\n' },
      ]),
    ],
    { Cmd: ['/bin/sh'] },
  );
  const big = buildImage(
    [
      buildLayer(busyboxRootfs()),
      buildLayer(
        [
          { path: 'data', type: 'dir' },
          { path: 'data/blob', type: 'file', content: bigBlob },
        ],
        'gzip',
        1,
      ),
    ],
    { Cmd: ['/bin/sh'] },
  );
  setup = await e2eSetup('smolvm-warm-e2e-', { 'warm/small:1': small, 'warm/big:1': big });
  ({ home, runtimeDir, env } = setup);
  smallImage = setup.refs['warm/small:1'];
  bigImage = setup.refs['warm/big:1'];
});

afterAll(async () => {
  await setup.close();
});

afterEach(() => {
  expect(qemuChildren()).toEqual([]);
  const root = path.join(runtimeDir, 'smolvm');
  expect(fs.existsSync(root) ? fs.readdirSync(root) : []).toEqual([]);
  // No staging or trash directory outlives a run.
  expect(hidden()).toEqual([]);
});

describe('boot snapshots', () => {
  it('the first run saves the snapshot of its shape (owner-only files); later runs restore it', () => {
    const first = run(['--debug', '--', 'echo', 'first']);
    expect(first.stdout).toBe('first\n');
    expect(first.stderr).toMatch(/note: no boot snapshot for this VM shape yet: cold boot/);
    expect(first.status).toBe(0);
    expect(snapshots()).toHaveLength(1);
    baseSnapshot = path.join(snapRoot(), snapshots()[0]);
    expect(fs.statSync(snapRoot()).mode & 0o777).toBe(0o700);
    expect(fs.statSync(baseSnapshot).mode & 0o777).toBe(0o700);
    for (const f of fs.readdirSync(baseSnapshot))
      expect([f, fs.statSync(path.join(baseSnapshot, f)).mode & 0o777]).toEqual([f, 0o600]);
    // A bare VM's snapshot has no image disk slot: its guest already runs in the bare root.
    expect(fs.readdirSync(baseSnapshot).sort()).toEqual(['memory', 'meta.json', 'qemu.json', 'state']);

    const warm = restoredBy(['--debug', '--', 'echo', 'warm']);
    expect(warm.result.stdout).toBe('warm\n');
    expect(warm.result.stderr).toBe('');
    expect(warm.restored).toBe(true);
    const cold = restoredBy(['--cold', '--', 'echo', 'cold']);
    expect(cold.result.stdout).toBe('cold\n');
    expect(cold.restored).toBe(false);
  });

  it('nothing of one run reaches the next: the bare root in the snapshot is fresh for every restore', () => {
    const write = restoredBy([
      '--',
      'sh',
      '-c',
      'echo one > /tmp/t; echo one > /root/r; echo one > /etc/added; mkdir /made',
    ]);
    expect(write.result.status).toBe(0);
    expect(write.restored).toBe(true);
    const read = restoredBy([
      '--',
      'sh',
      '-c',
      'ls -A /tmp | wc -l; ls -A /root | wc -l; test -e /etc/added || echo no-etc; test -e /made || echo no-made; cat /etc/resolv.conf',
    ]);
    expect(read.restored).toBe(true);
    expect(read.result.stdout).toBe(
      '0\n0\nno-etc\nno-made\n# smolvm: this VM has no network; start it with --net for DNS\n',
    );
  });

  it('sets the guest clock from the host after a restore', async () => {
    // Let the snapshot's clock fall behind, so a restore that skipped the clock would show it.
    const created = Date.parse(
      (JSON.parse(fs.readFileSync(path.join(baseSnapshot, 'meta.json'), 'utf8')) as { createdAt: string }).createdAt,
    );
    await new Promise((r) => setTimeout(r, Math.max(0, created + 5_000 - Date.now())));
    // busybox date has no sub-second format; adjtimex prints the clock to the microsecond.
    const before = Date.now() / 1000;
    const { result, restored } = restoredBy(['--', 'adjtimex']);
    const after = Date.now() / 1000;
    expect(restored).toBe(true);
    const [, sec, usec] = /time\.tv_sec:\s+(\d+)\s+time\.tv_usec:\s+(\d+)/.exec(result.stdout) ?? [];
    const guest = Number(sec) + Number(usec) / 1e6;
    expect(guest).toBeGreaterThan(before - 1);
    expect(guest).toBeLessThan(after + 1);
  });

  it('gives every restored VM its own random state (boot_id and /dev/urandom differ)', async () => {
    const script = 'cat /proc/sys/kernel/random/boot_id; head -c 32 /dev/urandom | od -An -tx1 | tr -d " \\n"';
    const [a, b] = await Promise.all([runAsync(['--', 'sh', '-c', script]), runAsync(['--', 'sh', '-c', script])]);
    expect([a.status, b.status]).toEqual([0, 0]);
    const [idA, randA] = a.stdout.split('\n');
    const [idB, randB] = b.stdout.split('\n');
    expect(randA).toMatch(/^[0-9a-f]{64}$/);
    expect(randA).not.toBe(randB);
    expect(idA).not.toBe(idB);
    expect(snapshots()).toHaveLength(1);
  });

  it('re-points the image disk: images of different sizes in consecutive warm runs', () => {
    const small = restoredBy(['-I', smallImage, '--', 'cat', '/opt/data/a']);
    expect(small.result.stdout).toBe('data a\n');
    expect(small.restored).toBe(true);
    const big = restoredBy(['-I', bigImage, '--', 'sha256sum', '/data/blob']);
    expect(big.result.stderr).toBe('');
    expect(big.result.stdout.split(' ')[0]).toBe(crypto.createHash('sha256').update(bigBlob).digest('hex'));
    expect(big.restored).toBe(true);
    const again = restoredBy([
      '-I',
      smallImage,
      '--',
      'sh',
      '-c',
      'cat /opt/data/a; ls /data 2>&1 | grep -c "No such"',
    ]);
    expect(again.result.stdout).toBe('data a\n1\n');
    expect(again.restored).toBe(true);
    // Bare runs after an image run see the bare root again.
    expect(run(['--', 'sh', '-c', 'test -e /opt/data/a || echo bare']).stdout).toBe('bare\n');
    // Runs with an image share one snapshot (an image disk slot, no root yet); bare runs have theirs.
    expect(snapshots()).toHaveLength(2);
    const imageSnapshot = snapshots()
      .map((n) => path.join(snapRoot(), n))
      .find((d) => d !== baseSnapshot) as string;
    expect(fs.readdirSync(imageSnapshot).sort()).toEqual(['memory', 'meta.json', 'qemu.json', 'slot.img', 'state']);
  });

  it('runs 8 VMs restored in parallel from one snapshot', async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        runAsync(['--', 'sh', '-c', `echo vm${i} $((6 * 7)); cat /proc/sys/kernel/random/boot_id`]),
      ),
    );
    const ids = new Set<string>();
    results.forEach((r, i) => {
      expect([r.status, r.stderr]).toEqual([0, '']);
      const [line, id] = r.stdout.trim().split('\n');
      expect(line).toBe(`vm${i} 42`);
      ids.add(id);
    });
    expect(ids.size).toBe(8);
    expect(snapshots()).toHaveLength(2);
  });

  it('applies the run settings after the restore: volumes, read-only volumes, environment, workdir', () => {
    const dir = fs.mkdtempSync(path.join(home, 'vol-'));
    fs.writeFileSync(path.join(dir, 'in.txt'), 'from the host\n');
    const ro = fs.mkdtempSync(path.join(home, 'ro-'));
    const r = restoredBy([
      '-v',
      `${dir}:/data`,
      '-v',
      `${ro}:/ro:ro`,
      '-e',
      'GREETING=hi',
      '-w',
      '/data',
      '--',
      'sh',
      '-c',
      'cat in.txt; echo $GREETING > out.txt; touch /ro/x 2>/dev/null || echo ro-refused',
    ]);
    expect(r.result.stderr).toBe('');
    expect(r.result.stdout).toBe('from the host\nro-refused\n');
    expect(r.restored).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'out.txt'), 'utf8')).toBe('hi\n');
  });

  it('a VM with a NIC has a snapshot shape of its own, and its network works after the restore', async () => {
    // A server in another process: the blocking CLI calls below would starve one in this one.
    // process.stdout.write, not console.log: under FORCE_COLOR (Nx sets it) a logged number is coloured.
    const server = spawn(process.execPath, [
      '-e',
      "require('http').createServer((q, r) => r.end('hi from the host\\n')).listen(0, '127.0.0.1', function () { process.stdout.write(this.address().port + '\\n') })",
    ]);
    try {
      const port = Number(
        await new Promise<string>((resolve) => server.stdout.once('data', (d: Buffer) => resolve(d.toString()))),
      );
      // nc's errors are kept (2>&1): a failure then says why. -w 20: TCG on a loaded CI host is slow.
      const get = [
        '--net',
        '--',
        '/bin/sh',
        '-c',
        `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 20 192.168.127.1 ${port} 2>&1 | tail -n1; ls /sys/class/net | tr '\\n' ' '`,
      ];
      const before = snapshots().length;
      const first = restoredBy(get);
      expect(first.result.stdout).toBe('hi from the host\neth0 lo ');
      expect(snapshots()).toHaveLength(before + 1);
      const second = restoredBy(get);
      expect(second).toMatchObject({ restored: true, result: { stdout: 'hi from the host\neth0 lo ', status: 0 } });
      // The shape without a NIC still restores without one.
      expect(restoredBy(['--', '/bin/sh', '-c', 'ls /sys/class/net'])).toMatchObject({
        restored: true,
        result: { stdout: 'lo\n' },
      });
    } finally {
      server.kill();
    }
  });

  it('two processes making the same snapshot at once: one publishes it, the other discards its copy', async () => {
    const shape = ['--memory', '320', '--debug', '--'];
    const before = snapshots().length;
    const [a, b] = await Promise.all([runAsync([...shape, 'echo', 'a']), runAsync([...shape, 'echo', 'b'])]);
    expect([a.status, a.stdout, b.status, b.stdout]).toEqual([0, 'a\n', 0, 'b\n']);
    expect(snapshots()).toHaveLength(before + 1);
    expect(restoredBy(['--memory', '320', '--', 'true']).restored).toBe(true);
  });

  it('a truncated snapshot file falls back to a cold boot (note with --debug) and is rebuilt', () => {
    for (const file of ['memory', 'state']) {
      fs.truncateSync(path.join(baseSnapshot, file), 4096);
      const r = run(['--debug', '--', 'echo', 'still works']);
      expect(r.stdout).toBe('still works\n');
      expect(r.status).toBe(0);
      expect(r.stderr).toMatch(
        new RegExp(`note: the boot snapshot .* is unusable \\(${file} is 4096 bytes, expected \\d+\\): cold boot`),
      );
      expect(fs.statSync(path.join(baseSnapshot, file)).size).toBeGreaterThan(4096);
      const next = restoredBy(['--debug', '--', 'true']);
      expect([next.restored, next.result.stderr]).toEqual([true, '']);
    }
  });

  it('a restore that brings back the wrong VM falls back to a cold boot; the snapshot is rebuilt', () => {
    const metaFile = path.join(baseSnapshot, 'meta.json');
    const meta = JSON.parse(fs.readFileSync(metaFile, 'utf8')) as { agentPid: number };
    fs.writeFileSync(metaFile, JSON.stringify({ ...meta, agentPid: meta.agentPid + 1000 }));
    const r = restoredBy(['--debug', '--', 'echo', 'ok']);
    expect(r.result.stdout).toBe('ok\n');
    expect(r.restored).toBe(false);
    expect(r.result.stderr).toMatch(
      /note: restoring the boot snapshot failed \(the restored agent is not the saved one .*\): cold boot/,
    );
    expect(fs.existsSync(baseSnapshot)).toBe(false);
    expect(run(['--', 'true']).status).toBe(0);
    expect(restoredBy(['--', 'true']).restored).toBe(true);
  });

  it('a changed kernel falls back to a cold boot (note with --debug) and replaces the snapshot', () => {
    const kernel = path.join(home, 'vmlinux');
    fs.copyFileSync(locateKernel(), kernel);
    const kenv = { SMOLVM_KERNEL: kernel };
    expect(run(['--memory', '288', '--', 'true'], kenv).status).toBe(0);
    const before = snapshots();
    expect(restoredBy(['--memory', '288', '--', 'true'], kenv).restored).toBe(true);
    // Bytes appended after the ELF image: the same bootable kernel, but another file.
    fs.appendFileSync(kernel, Buffer.alloc(4096, 0));
    const r = run(['--memory', '288', '--debug', '--', 'echo', 'new kernel'], kenv);
    expect(r.stdout).toBe('new kernel\n');
    expect(r.stderr).toMatch(/note: the boot snapshot for this VM shape was made with another kernel: cold boot/);
    // The stale snapshot of that shape is gone, the new one serves.
    expect(snapshots()).toHaveLength(before.length);
    expect(snapshots()).not.toEqual(before);
    expect(restoredBy(['--memory', '288', '--', 'true'], kenv).restored).toBe(true);
  });
});

describe('early start (the executable restores before the CLI has loaded)', () => {
  const recipeDir = () => path.join(home, 'cache', 'prestart');
  const BASE = ['machine', 'run', ...SHAPE];
  /** The recipe file an invocation uses: the words before `--`, cwd, bundle and environment name it. */
  const recipeOf = (words: string[], extraEnv: NodeJS.ProcessEnv = {}) =>
    recipeFile(
      path.join(home, 'cache'),
      invocationKey(
        [...words, '--', 'true'],
        process.cwd(),
        { ...process.env, ...env, ...extraEnv },
        path.join(path.dirname(CLI), 'smolvm-main.js'),
      ),
    );
  /** The recipe file of the test shape's plain invocation, after a run that leaves it. */
  const baseRecipe = (flags: string[] = []) => {
    expect(run([...flags, '--', 'true']).status).toBe(0);
    return recipeOf([...BASE, ...flags]);
  };
  const timed = (args: string[]) => {
    const file = path.join(home, 'timings-early.json');
    const result = run(args, { SMOLVM_TIMINGS: file });
    const t = JSON.parse(fs.readFileSync(file, 'utf8')) as { restored: boolean; earlyStart: number | null };
    fs.rmSync(file);
    return { result, ...t };
  };

  it('a repeated invocation is restored from the recipe its predecessor left (owner-only), with the same results', () => {
    expect(run(['--', 'true']).status).toBe(0);
    const file = recipeOf(BASE);
    expect(fs.statSync(recipeDir()).mode & 0o777).toBe(0o700);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const again = timed(['--', 'sh', '-c', 'echo early; cat /proc/sys/kernel/random/boot_id']);
    expect([again.result.status, again.restored, typeof again.earlyStart]).toEqual([0, true, 'number']);
    expect(again.result.stdout).toMatch(/^early\n[0-9a-f-]{36}\n$/);
    // Turned off (SMOLVM_NO_EARLY_START=1): the same run restores the usual way.
    const file2 = path.join(home, 'timings-off.json');
    expect(run(['--', 'true'], { SMOLVM_NO_EARLY_START: '1', SMOLVM_TIMINGS: file2 }).status).toBe(0);
    expect(JSON.parse(fs.readFileSync(file2, 'utf8'))).toMatchObject({ restored: true, earlyStart: null });
    fs.rmSync(file2);
  });

  it('a recipe for another restore is not used: its VM is ended, the run restores as usual, the recipe is rewritten', () => {
    // --debug is part of the invocation, so this is the recipe of `... --debug -- CMD`.
    const file = baseRecipe(['--debug']);
    const good = fs.readFileSync(file, 'utf8');
    const recipe = JSON.parse(good) as { restore: { args: string[] } };
    // An option smolvm itself writes (a recipe may hold no other), one device more than this restore has.
    recipe.restore.args.push('-device', 'virtio-rng-device');
    fs.writeFileSync(file, JSON.stringify(recipe));
    const r = run(['--debug', '--', 'echo', 'ok']);
    expect([r.status, r.stdout]).toEqual([0, 'ok\n']);
    expect(r.stderr).toMatch(
      /note: the early start was not used \(the early-started QEMU is not the one this restore needs\)/,
    );
    expect(sameButRunDir(fs.readFileSync(file, 'utf8'), good)).toBe(true);
    expect(timed(['--', 'true']).earlyStart).not.toBeNull();
  });

  it('a recipe naming any other program starts nothing', () => {
    const file = baseRecipe();
    const good = fs.readFileSync(file, 'utf8');
    const marker = path.join(home, 'should-not-exist');
    const recipe = JSON.parse(good) as { restore: { file: string; args: string[] } };
    recipe.restore.file = '/usr/bin/touch';
    recipe.restore.args = [marker];
    fs.writeFileSync(file, JSON.stringify(recipe));
    const r = timed(['--', 'echo', 'ok']);
    expect([r.result.status, r.result.stdout, r.restored, r.earlyStart]).toEqual([0, 'ok\n', true, null]);
    expect(fs.existsSync(marker)).toBe(false);
    expect(sameButRunDir(fs.readFileSync(file, 'utf8'), good)).toBe(true);
  });

  it('a CLI killed (SIGKILL) just after its early start leaves no QEMU; the next run removes its run directory', async () => {
    baseRecipe();
    const child = spawn(process.execPath, [CLI, ...BASE, '--', 'sleep', '30'], {
      env: { ...process.env, ...env },
      stdio: 'ignore',
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      const deadline = Date.now() + 30_000;
      while (qemuChildren().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      expect(qemuChildren()).toHaveLength(1);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    // The parent-death signal ends QEMU with the CLI.
    const gone = Date.now() + 10_000;
    while (qemuChildren().length > 0 && Date.now() < gone) await new Promise((r) => setTimeout(r, 20));
    expect(qemuChildren()).toEqual([]);
    const root = path.join(runtimeDir, 'smolvm');
    expect(fs.readdirSync(root)).toHaveLength(1);
    // Its owner is dead: the next run sweeps it (afterEach checks the run root is empty).
    expect(run(['--', 'true']).status).toBe(0);
  });

  it('a run that fails before its VM starts leaves nothing of its early start (no QEMU, no run directory)', () => {
    const words = [...BASE, '-v', `${path.join(home, 'missing')}:/data`];
    fs.copyFileSync(baseRecipe(), recipeOf(words));
    const r = smolvm([...words, '--', 'true'], env, undefined, 300_000);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/volume host path .*missing is not a directory/);
    // afterEach: no QEMU child, an empty run root.
  });
});
