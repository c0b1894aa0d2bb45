// The shim under a real containerd (Debian's 1.6) with real VMs: a private containerd (root,
// state, sockets and config in a temp dir, this shim on its PATH), an image pulled from the local
// test registry, and ctr as the client. Needs root (containerd mounts snapshots) and the build.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { e2eSetup, type E2eSetup } from '../../cli/test/helpers';
import { buildImage, buildLayer, busyboxRootfs } from '../../../tools/fixtures/images';

const LAUNCHER = path.join(__dirname, '..', 'bin', 'containerd-shim-smolvm-v2');
const RUNTIME = 'io.containerd.smolvm.v2';
// Small VMs: ten of them boot at once below.
const SIZE = ['--memory-limit', String(256 << 20)];

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

let setup: E2eSetup;
let containerd: ChildProcess;
let sock: string;
let fifoDir: string;
let image: string;
let events: { child: ChildProcess; text: string };

function ctr(args: string[], input = '', timeoutMs = 240_000): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn('ctr', ['-a', sock, ...args], { env: { ...process.env, ...setup.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

const run = (id: string, argv: string[], extra: string[] = []) =>
  ctr(['run', '--rm', '--fifo-dir', fifoDir, '--runtime', RUNTIME, ...SIZE, ...extra, image, id, ...argv]);
const runDetached = (id: string, argv: string[]) =>
  ctr(['run', '-d', '--fifo-dir', fifoDir, '--runtime', RUNTIME, ...SIZE, image, id, ...argv]);

async function until<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 60_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const SERVER = 'containerd-shim-smolvm-v2-server.js';

/** The shim server process of task `id` (one per task), by its command line. */
function shimPid(id: string): number | undefined {
  const out = spawnSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' }).stdout;
  const line = out
    .split('\n')
    .find(
      (l) => l.includes(SERVER) && l.includes(` -id ${id} `) && l.includes(setup.home) && l.trim().endsWith('serve'),
    );
  return line ? Number(line.trim().split(/\s+/)[0]) : undefined;
}

/** The QEMU of task `id`: its shim's child. */
function qemuPid(id: string): number | undefined {
  const shim = shimPid(id);
  const out = shim ? spawnSync('ps', ['-o', 'pid=,args=', '--ppid', String(shim)], { encoding: 'utf8' }).stdout : '';
  const line = out.split('\n').find((l) => l.includes('qemu-system'));
  return line ? Number(line.trim().split(/\s+/)[0]) : undefined;
}

async function removeTask(id: string): Promise<Result> {
  const rm = await ctr(['task', 'rm', '-f', id]);
  await ctr(['container', 'rm', id]);
  return rm;
}

beforeAll(async () => {
  setup = await e2eSetup('smolvm-shim-', {
    'smolvm-test/busybox:latest': buildImage([buildLayer(busyboxRootfs())], {
      Cmd: ['/bin/sh'],
      Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'],
    }),
  });
  image = setup.refs['smolvm-test/busybox:latest'];
  const dir = path.join(setup.home, 'ctrd');
  const bin = path.join(dir, 'bin');
  fifoDir = path.join(dir, 'fifo');
  fs.mkdirSync(bin, { recursive: true });
  fs.mkdirSync(fifoDir);
  fs.symlinkSync(LAUNCHER, path.join(bin, 'containerd-shim-smolvm-v2'));
  sock = path.join(dir, 'c.sock');
  fs.writeFileSync(
    path.join(dir, 'config.toml'),
    [
      `version = 2`,
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      `disabled_plugins = ["io.containerd.grpc.v1.cri"]`,
      `[grpc]`,
      `  address = "${sock}"`,
    ].join('\n') + '\n',
  );
  containerd = spawn('containerd', ['--config', path.join(dir, 'config.toml')], {
    env: { ...process.env, ...setup.env, PATH: `${bin}:${process.env.PATH}` },
    stdio: ['ignore', 'ignore', fs.openSync(path.join(dir, 'containerd.log'), 'w')],
  });
  await until('containerd', async () => ((await ctr(['version'])).status === 0 ? true : undefined));
  const pull = await ctr(['image', 'pull', '--plain-http', image]);
  expect(pull.status).toBe(0);
  const child = spawn('ctr', ['-a', sock, 'events']);
  events = { child, text: '' };
  child.stdout.on('data', (d: Buffer) => (events.text += d.toString()));
}, 240_000);

afterAll(async () => {
  events?.child.kill();
  if (containerd) {
    containerd.kill('SIGTERM');
    await new Promise((r) => containerd.once('exit', r));
  }
  // Whatever a failed test left: shims, then mounts under the temp dir.
  for (const line of spawnSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' }).stdout.split('\n')) {
    if (line.includes(SERVER) && setup && line.includes(setup.home))
      process.kill(Number(line.trim().split(/\s+/)[0]), 'SIGKILL');
  }
  if (setup) {
    const mounts = fs
      .readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1])
      .filter((m) => m?.startsWith(setup.home));
    for (const m of mounts.reverse()) spawnSync('umount', ['-l', m]);
    await until('no QEMU of this file', () => (setup.qemus().length === 0 ? true : undefined), 30_000);
    await setup.close();
  }
}, 120_000);

it('ctr run --rm: output on stdout and stderr, the exit code, and the task events', async () => {
  const r = await run('t-run', ['sh', '-c', 'echo out; echo err >&2; cat /etc/hostname >/dev/null; exit 3']);
  expect(r).toMatchObject({ status: 3, stdout: 'out\n', stderr: expect.stringContaining('err\n') });
  const seen = await until(
    'the delete event',
    () => (/\/tasks\/delete \{"container_id":"t-run"/.test(events.text) ? events.text : undefined),
    10_000,
  );
  for (const topic of ['/tasks/create', '/tasks/start', '/tasks/exit', '/tasks/delete'])
    expect(seen).toMatch(new RegExp(`${topic} \\{"container_id":"t-run"`));
  expect(seen).toMatch(/\/tasks\/exit \{"container_id":"t-run","id":"t-run","pid":\d+,"exit_status":3,/);
}, 300_000);

it('a directory bind mount (--mount) is shared: read, written and synced to the host before the task is gone; ro refuses writes', async () => {
  const vol = path.join(setup.home, 'vol');
  fs.mkdirSync(vol);
  fs.writeFileSync(path.join(vol, 'in'), 'from host\n');
  const rw = await run(
    't-vol',
    ['sh', '-c', 'cat /data/in; echo from guest > /data/out'],
    ['--mount', `type=bind,src=${vol},dst=/data,options=rbind:rw`],
  );
  expect(rw).toMatchObject({ status: 0, stdout: 'from host\n' });
  expect(fs.readFileSync(path.join(vol, 'out'), 'utf8')).toBe('from guest\n');
  const ro = await run(
    't-vol-ro',
    ['sh', '-c', 'echo x > /data/other'],
    ['--mount', `type=bind,src=${vol},dst=/data,options=rbind:ro`],
  );
  expect(ro.status).not.toBe(0);
  expect(ro.stderr).toContain('Read-only file system');
  expect(fs.existsSync(path.join(vol, 'other'))).toBe(false);
}, 300_000);

it('ctr task exec (output, exit code, stdin), then SIGTERM ends the task with 143', async () => {
  expect((await runDetached('t-exec', ['sleep', '1000'])).status).toBe(0);
  const exec = await ctr(['task', 'exec', '--exec-id', 'e1', 't-exec', 'sh', '-c', 'echo in-exec; exit 4']);
  expect(exec).toMatchObject({ status: 4, stdout: 'in-exec\n' });
  const cat = await ctr(['task', 'exec', '--exec-id', 'e2', 't-exec', 'cat'], 'from stdin\n');
  expect(cat).toMatchObject({ status: 0, stdout: 'from stdin\n' });
  expect(events.text).toMatch(/\/tasks\/exec-added \{"container_id":"t-exec","exec_id":"e1"\}/);
  expect(events.text).toMatch(/\/tasks\/exec-started \{"container_id":"t-exec","exec_id":"e1","pid":\d+\}/);
  expect((await ctr(['task', 'kill', '-s', 'SIGTERM', 't-exec'])).status).toBe(0);
  await until('the exit event', () =>
    /\/tasks\/exit \{"container_id":"t-exec","id":"t-exec","pid":\d+,"exit_status":143,/.test(events.text)
      ? true
      : undefined,
  );
  expect((await ctr(['task', 'ls'])).stdout).toMatch(/t-exec\s+\d+\s+STOPPED/);
  expect((await removeTask('t-exec')).stderr).toContain('exit code 143');
}, 300_000);

it('SIGKILL ends a task that ignores SIGTERM with 137', async () => {
  expect(
    (await runDetached('t-kill', ['sh', '-c', "trap '' TERM; : > /tmp/trap-set; while :; do sleep 1; done"])).status,
  ).toBe(0);
  // `ctr run -d` returns once the task started, maybe before sh has set its trap.
  let probe = 0;
  await until('the trap to be set', async () =>
    (await ctr(['task', 'exec', '--exec-id', `probe${probe++}`, 't-kill', 'test', '-e', '/tmp/trap-set'])).status === 0
      ? true
      : undefined,
  );
  await ctr(['task', 'kill', '-s', 'SIGTERM', 't-kill']);
  await new Promise((r) => setTimeout(r, 2000));
  expect((await ctr(['task', 'ls'])).stdout).toMatch(/t-kill\s+\d+\s+RUNNING/);
  await ctr(['task', 'kill', '-s', 'SIGKILL', 't-kill']);
  await until('the exit event', () =>
    /"container_id":"t-kill","id":"t-kill","pid":\d+,"exit_status":137,/.test(events.text) ? true : undefined,
  );
  await removeTask('t-kill');
}, 300_000);

it('a tty task: a terminal inside, its exit code through', async () => {
  // ctr -t needs a terminal of its own: script(1) gives it one.
  const cmd = `ctr -a ${sock} run --rm -t --fifo-dir ${fifoDir} --runtime ${RUNTIME} ${SIZE.join(' ')} ${image} t-tty sh -c 'tty; exit 7'`;
  const r = spawnSync('script', ['-qec', cmd, '/dev/null'], {
    input: '',
    encoding: 'utf8',
    env: { ...process.env, ...setup.env },
    timeout: 240_000,
  });
  expect(r.stdout).toMatch(/\/dev\/pts\/\d+/);
  expect(r.status).toBe(7);
}, 300_000);

it('a killed shim leaves no QEMU, and containerd cleans the task up', async () => {
  expect((await runDetached('t-shim', ['sleep', '1000'])).status).toBe(0);
  const pid = shimPid('t-shim');
  const qemu = qemuPid('t-shim');
  expect(pid).toBeDefined();
  expect(qemu).toBeDefined();
  process.kill(pid!, 'SIGKILL');
  await until('the VM to go', () => (setup.qemus().some((q) => q.startsWith(`${qemu} `)) ? undefined : true), 30_000);
  await until(
    'containerd to drop the task',
    async () => ((await ctr(['task', 'ls'])).stdout.includes('t-shim') ? undefined : true),
    30_000,
  );
  await ctr(['container', 'rm', 't-shim']);
}, 300_000);

it('a VM that dies reports its task ended (137) to containerd', async () => {
  expect((await runDetached('t-vm', ['sleep', '1000'])).status).toBe(0);
  const qemu = qemuPid('t-vm');
  expect(qemu).toBeDefined();
  process.kill(qemu!, 'SIGKILL');
  await until('the exit event', () =>
    /"container_id":"t-vm","id":"t-vm","pid":\d+,"exit_status":137,/.test(events.text) ? true : undefined,
  );
  expect((await ctr(['task', 'ls'])).stdout).toMatch(/t-vm\s+\d+\s+STOPPED/);
  await removeTask('t-vm');
}, 300_000);

it('10 tasks at once, each with its own output and exit code', async () => {
  const results = await Promise.all(
    Array.from({ length: 10 }, (_, i) => run(`t-many-${i}`, ['sh', '-c', `echo task ${i}; exit ${i}`])),
  );
  results.forEach((r, i) => expect(r).toMatchObject({ status: i, stdout: `task ${i}\n` }));
  await until('every VM to go', () => (setup.qemus().length === 0 ? true : undefined), 30_000);
}, 900_000);
