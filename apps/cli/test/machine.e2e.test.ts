// Persistent machines end to end: the built CLI, real VMs (KVM where usable, else TCG), the
// detached supervisor, real ext4 disks. The tests share one machine where they can: each boot
// costs seconds under TCG.
//
// Every start is restored from the boot snapshot of the machine's shape (warm: the default) in
// this file; machine-cold.e2e.test.ts sets SMOLVM_E2E_COLD and loads it again with every start
// `--cold`: each persistence property must hold both ways. Tests that do not depend on how the
// VM started (cp, monitor) run once, here.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { featureImage } from '../../../tools/fixtures/images';
import { CLI, e2eSetup, smolvm, startPty, startSmolvm, type CliResult, type E2eSetup } from './helpers';

jest.setTimeout(300_000);

const COLD = process.env.SMOLVM_E2E_COLD === '1';
const startFlags = COLD ? ['--cold'] : [];
/** Start-independent tests run in the warm file only. */
const onceOnly = COLD ? describe.skip : describe;

let setup: E2eSetup;
let home: string;
let env: NodeJS.ProcessEnv;
let imageRef: string;

const SMALL = ['--cpus', '1', '--memory', '256', '--storage', '1', '--overlay', '1'];

function cli(args: string[], input?: string): CliResult {
  return smolvm(args, env, input, 240_000);
}

function cliAsync(args: string[]): { done: Promise<CliResult>; pid: number } {
  return startSmolvm(args, env);
}

/** `machine start`, warm or --cold as this file runs; checks the supervisor started it that way. */
function start(name: string): CliResult {
  const r = cli(['machine', 'start', '--name', name, ...startFlags]);
  if (r.status === 0 && !r.stderr.includes('already running'))
    expect(lastStart(name)).toBe(COLD ? 'booted' : 'restored');
  return r;
}

/** How the machine's last start came up, from its supervisor log. */
function lastStart(name: string): string | undefined {
  const log = fs.readFileSync(path.join(home, 'data', 'machines', name, 'supervisor.log'), 'utf8');
  return /ready after \d+ ms \((restored|booted)/.exec(
    log
      .split('\n')
      .filter((l) => l.includes(' ready after '))
      .pop() ?? '',
  )?.[1];
}

/** `machine cp` of a host file holding `text` to `dest` (NAME:PATH). */
function upload(text: string, dest: string): CliResult {
  const up = path.join(os.tmpdir(), `smolvm-upload-${process.pid}.txt`);
  fs.writeFileSync(up, text);
  try {
    return cli(['machine', 'cp', up, dest]);
  } finally {
    fs.rmSync(up, { force: true });
  }
}

function exec(name: string, script: string): CliResult {
  return cli(['machine', 'exec', '--name', name, '--', '/bin/sh', '-c', script]);
}

function record(name: string): { runtime: { pid: number; vm: { pid: number } } } {
  return JSON.parse(fs.readFileSync(path.join(home, 'data', 'machines', name, 'machine.json'), 'utf8'));
}

const qemus = () => setup.qemus();

async function until(what: string, check: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function isAlive(pid: number): boolean {
  try {
    return !fs.readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
}

const sha = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

beforeAll(async () => {
  setup = await e2eSetup(COLD ? 'smolvm-machine-cold-e2e-' : 'smolvm-machine-e2e-', {
    'smolvm-test/feature:latest': featureImage(),
  });
  ({ home, env } = setup);
  imageRef = setup.refs['smolvm-test/feature:latest'];
});

afterAll(async () => {
  for (const name of ['dev', 'img', 'mon']) cli(['machine', 'delete', name, '-f']);
  expect(qemus()).toEqual([]);
  await setup.close();
});

describe('machine create', () => {
  it('records the machine with sparse disks and lists it with the documented JSON schema', () => {
    const r = cli(['machine', 'create', 'dev', ...SMALL]);
    expect(r.stderr).toContain('created machine "dev"');
    expect(r.stdout).toBe('dev\n');
    expect(r.status).toBe(0);
    const dir = path.join(home, 'data', 'machines', 'dev');
    for (const disk of ['overlay.ext4', 'storage.ext4']) {
      const st = fs.statSync(path.join(dir, disk));
      expect(st.size).toBe(1024 ** 3);
      expect(st.blocks * 512).toBeLessThan(16 * 1024 * 1024);
    }
    const ls = JSON.parse(cli(['machine', 'ls', '--json']).stdout) as Array<Record<string, unknown>>;
    // A bare machine is based on the base image bare VMs run on (here the busybox one e2eSetup names).
    expect(ls).toEqual([
      {
        name: 'dev',
        state: 'created',
        image: env.SMOLVM_BASE_IMAGE,
        cpus: 1,
        memoryMiB: 256,
        storageGiB: 1,
        overlayGiB: 1,
        net: false,
        ephemeral: false,
        createdAt: expect.any(String),
      },
    ]);
  });

  it('refuses a taken name, a bad name, and exec on a machine that is not running', () => {
    const taken = cli(['machine', 'create', 'dev']);
    expect(taken.status).toBe(1);
    expect(taken.stderr).toBe(
      'error: machine "dev" already exists; choose another name, or delete it first with `smolvm machine delete dev`\n',
    );
    const bad = cli(['machine', 'create', 'Bad_Name']);
    expect(bad.status).toBe(2);
    const notRunning = exec('dev', 'true');
    expect(notRunning.status).toBe(1);
    expect(notRunning.stderr).toBe(
      'error: machine "dev" is not running; start it with `smolvm machine start --name dev`\n',
    );
  });
});

describe('a running machine', () => {
  it('keeps what exec writes and installs across stop/start; /tmp is fresh; /workspace persists', () => {
    expect(start('dev').status).toBe(0);
    const status = JSON.parse(cli(['machine', 'status', '--name', 'dev', '--json']).stdout);
    expect(status).toMatchObject({ name: 'dev', state: 'running', pingMs: expect.any(Number) });
    const w = exec(
      'dev',
      'mkdir -p /usr/local/bin && cp /bin/busybox /usr/local/bin/busybox-copy && echo edited > /etc/marker && echo kept > /workspace/notes && echo gone > /tmp/scratch',
    );
    expect(w.stderr).toBe('');
    expect(w.status).toBe(0);
    const stop = cli(['machine', 'stop', '--name', 'dev']);
    expect(stop.status).toBe(0);
    expect(JSON.parse(cli(['machine', 'status', '--name', 'dev', '--json']).stdout)).toMatchObject({
      state: 'stopped',
      lastExit: { cause: 'stopped' },
    });
    expect(qemus()).toEqual([]);
    expect(start('dev').status).toBe(0);
    const r = exec('dev', 'busybox-copy echo installed; cat /etc/marker /workspace/notes; ls /tmp | wc -l');
    expect(r.stdout).toBe('installed\nedited\nkept\n0\n');
  });

  (COLD ? it.skip : it)(
    "a warm start's supervisor begins the restore its previous start left a recipe of (owner-only) before it loads",
    () => {
      const recipes = path.join(home, 'cache', 'prestart');
      expect(cli(['machine', 'stop', '--name', 'dev']).status).toBe(0);
      expect(start('dev').status).toBe(0);
      const log = fs.readFileSync(path.join(home, 'data', 'machines', 'dev', 'supervisor.log'), 'utf8');
      expect(
        log
          .split('\n')
          .filter((l) => l.includes(' ready after '))
          .pop(),
      ).toMatch(/started early, \d+ ms ahead\), setup \d+ \(sent by the early start\)/);
      for (const f of fs.readdirSync(recipes)) expect(fs.statSync(path.join(recipes, f)).mode & 0o777).toBe(0o600);
      // The clock is set again once the supervisor has the guest: the early one was read before it ran.
      const guestNow = Number(exec('dev', 'date +%s').stdout.trim());
      expect(Math.abs(guestNow - Date.now() / 1000)).toBeLessThan(30);
      // The early-started QEMU shares the inbox before the supervisor empties it: uploads still arrive.
      expect(upload('through the inbox\n', 'dev:/workspace/early.txt').status).toBe(0);
      expect(exec('dev', 'cat /workspace/early.txt /workspace/notes /etc/marker; rm /workspace/early.txt').stdout).toBe(
        'through the inbox\nkept\nedited\n',
      );
    },
  );

  (COLD ? it.skip : it)(
    'an early start whose recipe names another setup is ended before it is taken over; the start restores again',
    () => {
      const recipes = path.join(home, 'cache', 'prestart');
      expect(cli(['machine', 'stop', '--name', 'dev']).status).toBe(0);
      // The recipes (this machine's has a setup) with another hostname: the guest gets set up so early.
      let changed = 0;
      for (const f of fs.readdirSync(recipes)) {
        const file = path.join(recipes, f);
        const recipe = JSON.parse(fs.readFileSync(file, 'utf8')) as { setup?: { hostname?: string } };
        if (recipe.setup?.hostname !== 'dev') continue;
        recipe.setup.hostname = 'intruder';
        fs.writeFileSync(file, JSON.stringify(recipe));
        changed++;
      }
      expect(changed).toBe(1);
      const r = cli(['machine', 'start', '--name', 'dev', '--debug']);
      expect(r.status).toBe(0);
      expect(r.stderr).toContain('the early start set the guest up for another setup: restored again');
      expect(lastStart('dev')).toBe('restored');
      expect(exec('dev', 'hostname; cat /etc/hostname /workspace/notes /etc/marker').stdout).toBe(
        'dev\ndev\nkept\nedited\n',
      );
      expect(qemus()).toHaveLength(1);
    },
  );

  (COLD ? it.skip : it)(
    "a new machine's first start begins early from its shape's recipe, on its own disks, hostname and inbox only",
    () => {
      const recipes = path.join(home, 'cache', 'prestart');
      // dev's starts left its shape's recipe: its directory and name as slots, nothing else of it.
      const shapes = fs.readdirSync(recipes).filter((f) => f.startsWith('shape-'));
      expect(shapes.length).toBeGreaterThan(0);
      for (const f of shapes) {
        const shape = fs.readFileSync(path.join(recipes, f), 'utf8');
        expect(shape).not.toContain(path.join(home, 'data', 'machines', 'dev'));
        expect(shape).not.toContain('"hostname":"dev"');
        expect(fs.statSync(path.join(recipes, f)).mode & 0o777).toBe(0o600);
      }
      expect(cli(['machine', 'create', 'twin', ...SMALL]).status).toBe(0);
      try {
        // Creation kept the first start's invocation (owner-only): the loader spawns its supervisor too.
        const startFile = path.join(home, 'data', 'machines', 'twin', 'start.json');
        expect(fs.statSync(startFile).mode & 0o777).toBe(0o600);
        const kept = JSON.parse(fs.readFileSync(startFile, 'utf8')) as { v: number; imageErofs: string };
        expect(kept.v).toBe(1);
        expect(fs.existsSync(kept.imageErofs)).toBe(true);
        const first = cli(['machine', 'start', '--name', 'twin', '--debug']);
        expect(first.status).toBe(0);
        expect(first.stderr).not.toContain('spawned early was not used');
        expect(lastStart('twin')).toBe('restored');
        const log = fs.readFileSync(path.join(home, 'data', 'machines', 'twin', 'supervisor.log'), 'utf8');
        expect(log).toMatch(/ready after \d+ ms \(restored from a boot snapshot; .*started early/);
        // Its own empty disks, its own name, while dev runs on with its own (both QEMUs hold theirs).
        expect(
          exec('twin', 'hostname; cat /etc/hostname; ls /workspace; test -e /etc/marker || echo clean').stdout,
        ).toBe('twin\ntwin\nlost+found\nclean\n');
        expect(exec('dev', 'hostname; cat /workspace/notes /etc/marker').stdout).toBe('dev\nkept\nedited\n');
        expect(upload('to the twin\n', 'twin:/workspace/up.txt').status).toBe(0);
        expect(exec('twin', 'cat /workspace/up.txt').stdout).toBe('to the twin\n');
        expect(exec('dev', 'ls /workspace').stdout).not.toContain('up.txt');
      } finally {
        expect(cli(['machine', 'delete', 'twin', '-f']).status).toBe(0);
      }
    },
  );

  it('passes exit codes through, 127 for a missing command, and stdin with -i', () => {
    expect(exec('dev', 'exit 7').status).toBe(7);
    const missing = cli(['machine', 'exec', '--name', 'dev', '--', 'no-such-command']);
    expect(missing.status).toBe(127);
    expect(cli(['machine', 'exec', '--name', 'dev', '-i', '--', 'wc', '-c'], 'twelve bytes').stdout.trim()).toBe('12');
    expect(
      cli([
        'machine',
        'exec',
        '--name',
        'dev',
        '-e',
        'GREETING=hi',
        '-w',
        '/workspace',
        '--',
        '/bin/sh',
        '-c',
        'echo $GREETING $(pwd)',
      ]).stdout,
    ).toBe('hi /workspace\n');
  });

  it('exec -it gives the command a terminal: its size, Ctrl-C to the command, the exit code back', async () => {
    const cmd = `${process.execPath} ${CLI} machine exec --name dev -it -- /bin/sh`;
    const pty = startPty(cmd, env);
    try {
      await pty.waitFor(/ # /, 120_000);
      pty.type('tty; echo "cols=$(stty size)"\r');
      await pty.waitFor(/cols=\d+ \d+/, 60_000);
      expect(pty.output).toMatch(/\/dev\/pts\/\d+/);
      pty.type('sleep 1000\r');
      await new Promise((r) => setTimeout(r, 1500));
      pty.type('\x03');
      pty.type('echo after-sleep=$?\r');
      await pty.waitFor(/after-sleep=130/, 60_000);
      pty.type('exit 7\r');
      expect(await pty.exited).toBe(7);
    } finally {
      pty.kill();
    }
  });

  it('runs 20 concurrent execs correctly', async () => {
    const runs = Array.from({ length: 20 }, (_, i) =>
      cliAsync([
        'machine',
        'exec',
        '--name',
        'dev',
        '--',
        '/bin/sh',
        '-c',
        `echo out-${i}; echo err-${i} >&2; exit ${i % 7}`,
      ]),
    );
    const results = await Promise.all(runs.map((r) => r.done));
    results.forEach((r, i) => {
      expect({ i, status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({
        i,
        status: i % 7,
        stdout: `out-${i}\n`,
        stderr: `err-${i}\n`,
      });
    });
  });
});

onceOnly('machine cp', () => {
  let work: string;
  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-cp-'));
  });
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  it('copies 100 MB up and back with equal sha256', () => {
    const src = path.join(work, 'big.bin');
    fs.writeFileSync(src, crypto.randomBytes(100 * 1024 * 1024));
    const up = cli(['machine', 'cp', src, 'dev:/workspace/big.bin']);
    expect(up.stderr).toBe('');
    expect(up.stdout).toMatch(/^uploaded 104857600 bytes to dev:\/workspace\/big.bin in [\d.]+ s \([\d.]+ MB\/s\)\n$/);
    const back = path.join(work, 'back.bin');
    const down = cli(['machine', 'cp', 'dev:/workspace/big.bin', back]);
    expect(down.status).toBe(0);
    expect(sha(back)).toBe(sha(src));
    expect(exec('dev', 'sha256sum /workspace/big.bin').stdout.split(' ')[0]).toBe(sha(src));
    expect(fs.readdirSync(work).sort()).toEqual(['back.bin', 'big.bin']);
  });

  it('uses the source name when the destination is a directory, on both sides', () => {
    fs.writeFileSync(path.join(work, 'note.txt'), 'a note\n');
    expect(cli(['machine', 'cp', path.join(work, 'note.txt'), 'dev:/workspace']).stdout).toContain(
      'dev:/workspace/note.txt',
    );
    const dl = path.join(work, 'dl');
    fs.mkdirSync(dl);
    expect(cli(['machine', 'cp', 'dev:/workspace/note.txt', dl]).status).toBe(0);
    expect(fs.readFileSync(path.join(dl, 'note.txt'), 'utf8')).toBe('a note\n');
  });

  it('refuses 4 GiB transfers up front in both directions, with the reference wording', () => {
    const huge = path.join(work, 'huge');
    fs.writeFileSync(huge, '');
    fs.truncateSync(huge, 4 * 1024 ** 3);
    const up = cli(['machine', 'cp', huge, 'dev:/workspace/huge']);
    expect(up.status).toBe(2);
    expect(up.stderr).toMatch(
      /^error: total_size exceeds maximum: .* mount the host directory with --volume instead\n$/,
    );
    expect(exec('dev', 'truncate -s 4G /workspace/huge && echo made').stdout).toBe('made\n');
    const down = cli(['machine', 'cp', 'dev:/workspace/huge', path.join(work, 'huge-back')]);
    expect(down.status).toBe(2);
    expect(down.stderr).toContain('exceeding the byte cap');
    expect(fs.existsSync(path.join(work, 'huge-back'))).toBe(false);
    exec('dev', 'rm /workspace/huge');
  });

  it('a transfer killed midway leaves the previous file intact and no staging file', async () => {
    fs.writeFileSync(path.join(work, 'target'), 'previous\n');
    expect(cli(['machine', 'cp', path.join(work, 'target'), 'dev:/workspace/target']).status).toBe(0);
    // Big enough (600 MB, sparse on the host) that the kill lands while the bytes still arrive.
    const big = path.join(work, 'sparse.bin');
    fs.writeFileSync(big, '');
    fs.truncateSync(big, 600 * 1024 * 1024);
    const inbox = path.join(home, 'data', 'machines', 'dev', 'inbox');
    const copy = cliAsync(['machine', 'cp', big, 'dev:/workspace/target']);
    const staged = () =>
      fs.readdirSync(inbox).some((f) => (fs.statSync(path.join(inbox, f), { throwIfNoEntry: false })?.size ?? 0) > 0);
    await until('the upload to be under way', staged, 30_000);
    process.kill(copy.pid, 'SIGKILL');
    const killed = await copy.done;
    expect(killed.status).toBeNull();
    let listing = '';
    await until('the staging file to go', () => {
      listing = exec('dev', 'ls -a /workspace').stdout;
      return !listing.includes('.part');
    });
    expect(exec('dev', 'cat /workspace/target').stdout).toBe('previous\n');
    expect(fs.readdirSync(inbox)).toEqual([]);
    fs.rmSync(big);
  });

  it('copies directories both ways (files, subdirectories, links), refusing an existing destination', () => {
    const tree = path.join(work, 'tree');
    fs.mkdirSync(path.join(tree, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(tree, 'a.txt'), 'a\n');
    fs.writeFileSync(path.join(tree, 'sub', 'b.bin'), crypto.randomBytes(2 * 1024 * 1024));
    fs.symlinkSync('a.txt', path.join(tree, 'link'));
    const up = cli(['machine', 'cp', tree, 'dev:/workspace']);
    expect(up.stdout).toMatch(/^uploaded \d+ bytes of tar to dev:\/workspace\/tree in/);
    expect(
      exec('dev', 'cat /workspace/tree/a.txt; readlink /workspace/tree/link; sha256sum /workspace/tree/sub/b.bin')
        .stdout,
    ).toBe(`a\na.txt\n${sha(path.join(tree, 'sub', 'b.bin'))}  /workspace/tree/sub/b.bin\n`);
    const again = cli(['machine', 'cp', tree, 'dev:/workspace']);
    expect(again.status).toBe(1);
    expect(again.stderr).toContain('/workspace/tree already exists');
    const back = path.join(work, 'tree-back');
    expect(cli(['machine', 'cp', 'dev:/workspace/tree', back]).status).toBe(0);
    expect(sha(path.join(back, 'sub', 'b.bin'))).toBe(sha(path.join(tree, 'sub', 'b.bin')));
    expect(fs.readlinkSync(path.join(back, 'link'))).toBe('a.txt');
    expect(fs.readdirSync(work).filter((n) => n.endsWith('.part'))).toEqual([]);
  });

  it('refuses a relative guest path and copies between two machines', () => {
    const rel = cli(['machine', 'cp', path.join(work, 'target'), 'dev:workspace/x']);
    expect(rel.status).toBe(2);
    expect(rel.stderr).toContain('must be absolute');
    expect(cli(['machine', 'cp', 'dev:/a', 'dev:/b']).status).toBe(2);
  });
});

describe('crashes and races', () => {
  it('SIGKILL of QEMU: status says stopped and why; start brings the disks back', async () => {
    const { vm } = record('dev').runtime;
    process.kill(vm.pid, 'SIGKILL');
    await until(
      'the machine to stop',
      () => JSON.parse(cli(['machine', 'status', '--name', 'dev', '--json']).stdout).state === 'stopped',
    );
    const status = JSON.parse(cli(['machine', 'status', '--name', 'dev', '--json']).stdout);
    expect(status.lastExit).toMatchObject({ cause: 'vm', detail: expect.stringContaining('SIGKILL') });
    expect(start('dev').status).toBe(0);
    expect(exec('dev', 'cat /workspace/notes').stdout).toBe('kept\n');
  });

  it('SIGKILL of the supervisor takes QEMU with it; status says stopped; start recovers', async () => {
    const { pid, vm } = record('dev').runtime;
    process.kill(pid, 'SIGKILL');
    await until('QEMU to end', () => !isAlive(vm.pid));
    expect(JSON.parse(cli(['machine', 'status', '--name', 'dev', '--json']).stdout).state).toBe('stopped');
    expect(start('dev').status).toBe(0);
    expect(exec('dev', 'cat /etc/marker').stdout).toBe('edited\n');
  });

  it('two starts at once start one VM', async () => {
    expect(cli(['machine', 'stop', '--name', 'dev']).status).toBe(0);
    const [a, b] = await Promise.all([
      cliAsync(['machine', 'start', '--name', 'dev', ...startFlags]).done,
      cliAsync(['machine', 'start', '--name', 'dev', ...startFlags]).done,
    ]);
    expect([a.status, b.status]).toEqual([0, 0]);
    expect([a.stderr, b.stderr].filter((s) => s.includes('already running'))).toHaveLength(1);
    expect(qemus()).toHaveLength(1);
  });

  it('stopping a machine under a running exec ends that exec with one clear line', async () => {
    const long = cliAsync(['machine', 'exec', '--name', 'dev', '--', 'sleep', '60']);
    await new Promise((r) => setTimeout(r, 1500));
    expect(cli(['machine', 'stop', '--name', 'dev']).status).toBe(0);
    const r = await long.done;
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /^error: machine "dev" went away while the command ran \(.*\); see `smolvm machine status --name dev`\n$/,
    );
    expect(start('dev').status).toBe(0);
  });

  it('delete of a running machine needs -f, which kills it and leaves nothing', () => {
    const refused = cli(['machine', 'delete', 'dev']);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('is running');
    expect(cli(['machine', 'delete', 'dev', '-f']).status).toBe(0);
    expect(qemus()).toEqual([]);
    expect(fs.existsSync(path.join(home, 'data', 'machines', 'dev'))).toBe(false);
    expect(JSON.parse(cli(['machine', 'ls', '--json']).stdout)).toEqual([]);
  });
});

describe('an image-based machine', () => {
  it('persists changes over the image, runs [dev] init on every start, and sees cp files at the same path', () => {
    const smolfile = path.join(home, 'Smolfile');
    fs.writeFileSync(
      smolfile,
      `image = "${imageRef}"\ncpus = 1\nmemory = 256\nstorage = 1\noverlay = 1\n[dev]\ninit = ["date +%s >> /workspace/boots"]\n`,
    );
    const created = cli(['machine', 'create', 'img', '-s', smolfile]);
    expect(created.status).toBe(0);
    const started = start('img');
    expect(started.stderr).toMatch(/^machine "img" started in [\d.]+ s\n$/);
    // The image runs as user 1000: its home and /workspace are writable, the rest of the image is not.
    expect(
      exec(
        'img',
        'id -u; cat /etc/motd; echo new > /home/user/new && echo ok; touch /opt/data/x 2>&1 | grep -c denied',
      ),
    ).toMatchObject({ stdout: '1000\nsmolvm test image\nok\n1\n', status: 0 });
    fs.writeFileSync(path.join(home, 'in-tmp'), 'copied\n');
    expect(cli(['machine', 'cp', path.join(home, 'in-tmp'), 'img:/tmp/in-tmp']).status).toBe(0);
    expect(exec('img', 'cat /tmp/in-tmp').stdout).toBe('copied\n');
    expect(cli(['machine', 'stop', '--name', 'img']).status).toBe(0);
    expect(start('img').status).toBe(0);
    expect(exec('img', 'cat /home/user/new; wc -l < /workspace/boots').stdout).toBe('new\n2\n');
    const rm = cli(['image', 'rm', '-I', imageRef]);
    expect(rm.status).toBe(1);
    expect(rm.stderr).toMatch(/^error: image .* is used by machine img; delete that machine first/);
  });
});

describe('machine images, prune and resize', () => {
  it('images shows the digest the machine is pinned to', () => {
    const rows = JSON.parse(cli(['machine', 'images', '--json']).stdout);
    expect(rows).toEqual([
      {
        name: 'img',
        image: expect.stringContaining('smolvm-test/feature:latest'),
        digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
        inStore: true,
        from: null,
        overlayBytes: expect.any(Number),
        storageBytes: expect.any(Number),
      },
    ]);
  });

  it('prune refuses while the VM runs, then returns freed blocks to the host', () => {
    exec('img', 'dd if=/dev/urandom of=/workspace/fill bs=1M count=40 2>/dev/null; sync; rm /workspace/fill; sync');
    const refused = cli(['machine', 'prune', '--name', 'img']);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toBe(
      'error: machine prune requires the VM to be stopped; machine "img" is running; stop it first with `smolvm machine stop --name img`\n',
    );
    expect(cli(['machine', 'stop', '--name', 'img']).status).toBe(0);
    const pruned = JSON.parse(cli(['machine', 'prune', '--name', 'img', '--json']).stdout);
    expect(pruned.reclaimedBytes.storageBytes).toBeGreaterThan(30 * 1024 * 1024);
  });

  it("resize grows a stopped machine's disk and changes its vCPUs; data survives", () => {
    const r = cli(['machine', 'resize', '--name', 'img', '--storage', '2', '--cpus', '2']);
    expect(r.status).toBe(0);
    const shrink = cli(['machine', 'resize', '--name', 'img', '--storage', '1']);
    expect(shrink.status).toBe(2);
    expect(shrink.stderr).toContain('can only grow');
    expect(start('img').status).toBe(0);
    const out = exec(
      'img',
      "nproc; df -k /workspace | tail -1 | awk '{print $2}'; wc -l < /workspace/boots",
    ).stdout.split('\n');
    expect(out[0]).toBe('2');
    expect(Number(out[1])).toBeGreaterThan(1.8 * 1024 * 1024);
    expect(out[2]).toBe('3');
  });
});

onceOnly('machine monitor', () => {
  it('starts the machine, restarts it after failed health checks and when it dies, reports health', async () => {
    const smolfile = path.join(home, 'Smolfile.mon');
    fs.writeFileSync(
      smolfile,
      `cpus = 1\nmemory = 256\nstorage = 1\noverlay = 1\n[health]\nexec = ["test", "-f", "/workspace/healthy"]\ninterval = "2s"\ntimeout = "2s"\nretries = 2\n`,
    );
    expect(cli(['machine', 'create', 'mon', '-s', smolfile]).status).toBe(0);
    const child = spawn(process.execPath, [CLI, 'machine', 'monitor', '--name', 'mon'], {
      env: { ...process.env, ...env },
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      await until('the first start', () => out.includes('mon is running'), 120_000);
      await until(
        'a restart after two failed checks',
        () => out.includes('health check failed (2/2)') && out.includes('mon is running again'),
        120_000,
      );
      expect(exec('mon', 'touch /workspace/healthy && echo ok').stdout).toBe('ok\n');
      await until('a passing check', () => out.includes('mon is healthy'), 60_000);
      process.kill(record('mon').runtime.vm.pid, 'SIGKILL');
      await until(
        'a start after the VM died',
        () => out.split('mon is stopped; starting it').length > 1 && out.split('mon is running').length > 3,
        120_000,
      );
    } finally {
      child.kill('SIGINT');
    }
    expect(await closed).toBe(0);
    expect(out).toContain('stopped monitoring mon (the machine is left as it is)');
    expect(JSON.parse(cli(['machine', 'status', '--name', 'mon', '--json']).stdout).state).toBe('running');
  });
});
