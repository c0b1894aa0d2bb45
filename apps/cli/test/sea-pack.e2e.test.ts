// Issue 15's first acceptance test: a machine packed by the single-file smolvm runs where there
// is neither Node nor smolvm. Pack an image from the local registry, remove smolvm's image cache,
// then, with node and the checkout hidden and a fresh HOME, the packed executable (smolvm-stub,
// a single executable itself) runs a command (output, exit code), a shell through a pty (-it), and
// start/exec/status/stop.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { PackFile } from '@smolvm/pack';
import { featureImage } from '../../../tools/fixtures/images';
import { e2eSetup, startPty, shellWords, type E2eSetup } from './helpers';
import { readCacheFile } from '../src/code-cache';
import {
  hiddenCommand,
  hiddenRunner,
  killLeftovers,
  makeHome,
  type HiddenOptions,
  type HiddenResult,
} from './hidden-ns';

const DIST = path.join(__dirname, '..', 'dist');
const STUB = path.join(__dirname, '..', '..', 'pack-stub', 'dist', 'smolvm-stub');
const BOOT_MS = 600_000;

let setup: E2eSetup;
let dir: string;
let app: string;
let run: (argv: string[], opts: HiddenOptions) => HiddenResult;
let hidden: (argv: string[], opts: HiddenOptions) => string[];

beforeAll(async () => {
  // Built by the test target's build-sea dependencies.
  expect(fs.existsSync(path.join(DIST, 'smolvm'))).toBe(true);
  expect(fs.existsSync(STUB)).toBe(true);
  setup = await e2eSetup('smolvm-sea-pack-e2e-', { 'smolvm-test/feature:latest': featureImage() });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-sea-pack-'));
  fs.chmodSync(dir, 0o755);
  // Installed as the README says: both files side by side.
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin, { mode: 0o755 });
  fs.copyFileSync(path.join(DIST, 'smolvm'), path.join(bin, 'smolvm'));
  fs.copyFileSync(STUB, path.join(bin, 'smolvm-stub'));
  for (const f of ['smolvm', 'smolvm-stub']) fs.chmodSync(path.join(bin, f), 0o755);
  const smolfile = path.join(dir, 'Smolfile');
  fs.writeFileSync(
    smolfile,
    `image = "${setup.refs['smolvm-test/feature:latest']}"\nentrypoint = ["/bin/sh", "-c"]\ncmd = ["echo default command"]\n`,
  );
  app = path.join(dir, 'out', 'my-app');
  fs.mkdirSync(path.dirname(app), { mode: 0o755 });
  const packed = spawnSync(
    path.join(bin, 'smolvm'),
    ['pack', 'create', '-s', smolfile, '-o', app, '--cpus', '1', '--memory', '512M'],
    {
      env: { ...process.env, ...setup.env },
      encoding: 'utf8',
      timeout: BOOT_MS,
    },
  );
  expect(packed).toMatchObject({ status: 0, stdout: `${app}\n` });
  // The packed executable is the stub, byte for byte; the payload is beside it.
  expect(fs.readFileSync(app).equals(fs.readFileSync(STUB))).toBe(true);
  expect(fs.existsSync(`${app}.smolmachine`)).toBe(true);
  // The guest runs on the stub's own Node: the pack names the stub's bytes as its runtime, and its
  // agent image carries no second Node (all of the tests below boot it that way).
  const pack = PackFile.open(`${app}.smolmachine`);
  expect(pack.manifest.runtime).toMatchObject({ size: Math.floor(fs.statSync(STUB).size / 4096) * 4096 });
  expect(pack.section('agent')?.size).toBeLessThan(40 * 1024 * 1024);
  // Nothing of the packer's images is left to fall back on.
  fs.rmSync(path.join(setup.home, 'cache', 'oci'), { recursive: true, force: true });
  run = hiddenRunner(dir);
  hidden = hiddenCommand(dir);
}, BOOT_MS);

afterAll(async () => {
  const left = dir ? killLeftovers(dir) : [];
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  await setup?.close();
  expect(left).toEqual([]);
});

test(
  'run -- CMD: output and exit code, with node and the checkout hidden',
  () => {
    const home = makeHome(dir, 'home-run');
    const r = run([app, 'run', '--', 'echo "$GREETING from $(cat /etc/motd)"; exit 5'], { home });
    expect(r).toMatchObject({ stdout: 'hello from smolvm test image\n', stderr: '', status: 5 });
    const dflt = run([app], { home });
    expect(dflt).toMatchObject({ stdout: 'default command\n', status: 0 });
    // The stub started through the V8 code cache (src/sea.ts), keyed by the executable: written by
    // the succeeding run (the failed one adds no command), owner-only.
    const cacheDir = path.join(home, '.cache', 'smolvm', 'code-cache');
    const files = fs.readdirSync(cacheDir).map((f) => path.join(cacheDir, f));
    expect(files).toHaveLength(1);
    expect(fs.statSync(files[0]).mode & 0o777).toBe(0o600);
    expect(readCacheFile(files[0]).header).toMatchObject({ bundle: app, commands: [''] });
  },
  BOOT_MS,
);

test(
  'run -it: a shell on a pseudo-terminal, with node and the checkout hidden',
  async () => {
    const pty = startPty(
      shellWords(
        hidden([app, 'run', '-it', '--', '/bin/sh'], { home: makeHome(dir, 'home-pty'), env: { TERM: 'xterm' } }),
      ),
      {},
    );
    try {
      // The image's user is not root: the prompt is '/app $ '.
      await pty.waitFor(/\/app \$ /, BOOT_MS / 2);
      pty.type('tty; echo "rows=$(stty size)"\r');
      await pty.waitFor(/rows=\d+ \d+/, 60_000);
      expect(pty.output).toMatch(/\/dev\/pts\/\d+/);
      pty.type('exit 4\r');
      expect(await pty.exited).toBe(4);
    } finally {
      pty.kill();
    }
  },
  BOOT_MS,
);

test(
  'start, exec, status, stop',
  () => {
    const home = makeHome(dir, 'home-daemon');
    expect(run([app, 'status'], { home })).toMatchObject({ status: 0, stdout: 'not created\n' });
    const start = run([app, 'start'], { home });
    try {
      expect(start).toMatchObject({ status: 0 });
      expect(run([app, 'status'], { home })).toMatchObject({ status: 0, stdout: 'running\n' });
      const exec = run([app, 'exec', '--', 'sh', '-c', 'echo kept > /workspace/f; cat /etc/motd; exit 7'], { home });
      expect(exec).toMatchObject({ status: 7, stdout: 'smolvm test image\n' });
    } finally {
      expect(run([app, 'stop'], { home })).toMatchObject({ status: 0 });
    }
    expect(run([app, 'status'], { home })).toMatchObject({ status: 0, stdout: 'stopped\n' });
  },
  BOOT_MS,
);

test(
  'a repeated run begins its restore before the stub has loaded; a payload written since finds no recipe, and is verified',
  () => {
    // A copy of its own: the payload is damaged in place below.
    const early = path.join(dir, 'out', 'early-app');
    fs.copyFileSync(app, early);
    fs.copyFileSync(`${app}.smolmachine`, `${early}.smolmachine`);
    const home = makeHome(dir, 'home-early');
    // The same words before `--` (--debug included): the same invocation, whose recipe the first leaves.
    expect(run([early, 'run', '--debug', '--', 'true'], { home })).toMatchObject({ status: 0 });
    const again = run([early, 'run', '--debug', '--', 'echo again'], { home });
    expect(again).toMatchObject({ stdout: 'again\n', status: 0 });
    expect(again.stderr).toMatch(/note: the restore began before \.\/early-app had loaded \(\d+ ms ahead\)/);
    const recipes = path.join(home, '.cache', 'smolvm', 'prestart');
    for (const f of fs.readdirSync(recipes)) expect(fs.statSync(path.join(recipes, f)).mode & 0o777).toBe(0o600);
    // One byte of the root image flipped in place: the recipe was for the pack as it was, so
    // nothing restores early on these bytes, and the run refuses them before anything boots.
    const rootfs = PackFile.open(`${early}.smolmachine`).section('rootfs');
    expect(rootfs).toBeDefined();
    const fd = fs.openSync(`${early}.smolmachine`, 'r+');
    try {
      const at = (rootfs?.offset ?? 0) + Math.floor((rootfs?.size ?? 0) / 2);
      const b = Buffer.alloc(1);
      fs.readSync(fd, b, 0, 1, at);
      b[0] ^= 0x40;
      fs.writeSync(fd, b, 0, 1, at);
    } finally {
      fs.closeSync(fd);
    }
    const refused = run([early, 'run', '--', 'echo ran'], { home });
    expect(refused).toMatchObject({ stdout: '', status: 1 });
    expect(refused.stderr).toMatch(/^[^\n]*its rootfs section does not match its sha256[^\n]*\n$/);
  },
  BOOT_MS,
);

test(
  '--single-file: the payload appended to the single-executable stub runs the same',
  () => {
    const one = path.join(dir, 'out', 'one-file');
    const packed = spawnSync(
      path.join(dir, 'bin', 'smolvm'),
      ['pack', 'create', '--single-file', '-o', one, '--cpus', '1', '--memory', '512M'],
      {
        env: { ...process.env, ...setup.env },
        encoding: 'utf8',
        timeout: BOOT_MS,
      },
    );
    expect(packed).toMatchObject({ status: 0, stdout: `${one}\n` });
    expect(fs.existsSync(`${one}.smolmachine`)).toBe(false);
    const r = run([one, 'run', '--', 'sh', '-c', 'echo one file; exit 6'], { home: makeHome(dir, 'home-one') });
    expect(r).toMatchObject({ stdout: 'one file\n', stderr: '', status: 6 });
  },
  BOOT_MS,
);
