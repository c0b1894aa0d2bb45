// `machine run -d` end to end: the built CLI, real VMs (KVM where usable, else TCG) under the
// persistent machines' supervisor. What is checked after each VM is gone is everything it had:
// QEMU, supervisor, control socket, run dir, machine directory with its disks.
import fs from 'node:fs';
import path from 'node:path';
import { e2eSetup, smolvm, startSmolvm, type CliResult, type E2eSetup } from './helpers';

jest.setTimeout(300_000);

let setup: E2eSetup;
let env: NodeJS.ProcessEnv;
let machinesDir: string;

function cli(args: string[]): CliResult {
  return smolvm(args, env, undefined, 240_000);
}

function isAlive(pid: number): boolean {
  try {
    return !fs.readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
}

interface Runtime {
  pid: number;
  socket: string;
  vm: { pid: number };
}

function runtimeOf(name: string): Runtime {
  return (JSON.parse(fs.readFileSync(path.join(machinesDir, name, 'machine.json'), 'utf8')) as { runtime: Runtime })
    .runtime;
}

/** Nothing of any machine is left: no entry in the store, no process, no socket, no run dir. */
function expectNothingLeft(rt: Runtime): void {
  expect(fs.readdirSync(machinesDir).filter((e) => e !== '.locks')).toEqual([]);
  expect(JSON.parse(cli(['machine', 'ls', '--json']).stdout)).toEqual([]);
  expect(setup.qemus()).toEqual([]);
  expect(isAlive(rt.pid)).toBe(false);
  expect(isAlive(rt.vm.pid)).toBe(false);
  expect(fs.existsSync(rt.socket)).toBe(false);
  const runRoot = path.join(setup.runtimeDir, 'smolvm');
  expect(fs.existsSync(runRoot) ? fs.readdirSync(runRoot) : []).toEqual([]);
}

beforeAll(async () => {
  setup = await e2eSetup('smolvm-rund-e2e-');
  env = setup.env;
  machinesDir = path.join(setup.home, 'data', 'machines');
});

afterAll(async () => {
  const left = fs.existsSync(machinesDir) ? fs.readdirSync(machinesDir).filter((e) => !e.startsWith('.')) : [];
  for (const name of left) cli(['machine', 'delete', name, '-f']);
  expect(setup.qemus()).toEqual([]);
  await setup.close();
});

it('run -d -s Smolfile: runs [dev] init, prints the name, is listed and reachable by exec, and stop removes everything', () => {
  const smolfile = path.join(setup.home, 'Smolfile');
  fs.writeFileSync(
    smolfile,
    `cpus = 1\nmemory = 256\nstorage = 1\noverlay = 1\nenv = ["GREETING=hi"]\n[dev]\ninit = ["echo init-ran > /workspace/init"]\n`,
  );
  const started = cli(['machine', 'run', '-d', '-s', smolfile]);
  expect(started.stderr).toMatch(
    /^machine "run-[0-9a-f]{8}" is running \(ephemeral\) after [\d.]+ s: .*machine stop --name run-[0-9a-f]{8}` removes it\n$/,
  );
  expect(started.status).toBe(0);
  expect(started.stdout).toMatch(/^run-[0-9a-f]{8}\n$/);
  const name = started.stdout.trim();

  expect(JSON.parse(cli(['machine', 'ls', '--json']).stdout)).toMatchObject([
    { name, state: 'running', ephemeral: true, cpus: 1, memoryMiB: 256 },
  ]);
  expect(cli(['machine', 'status', '--name', name]).stdout).toMatch(
    /^state:\s+running \(ephemeral\) \(agent answered/m,
  );
  const exec = cli([
    'machine',
    'exec',
    '--name',
    name,
    '--',
    '/bin/sh',
    '-c',
    'cat /workspace/init; echo $GREETING; hostname',
  ]);
  expect(exec).toMatchObject({ status: 0, stdout: `init-ran\nhi\n${name}\n` });

  const rt = runtimeOf(name);
  expect(isAlive(rt.pid) && isAlive(rt.vm.pid)).toBe(true);
  const stopped = cli(['machine', 'stop', '--name', name]);
  expect(stopped).toMatchObject({ status: 0, stderr: `machine "${name}" stopped and removed (ephemeral)\n` });
  expectNothingLeft(rt);
  // Never started again: its supervisor keeps no early-start recipe (it would push out others).
  const recipes = path.join(setup.home, 'cache', 'prestart');
  expect(fs.existsSync(recipes) ? fs.readdirSync(recipes) : []).toEqual([]);
});

it('run -d --name N: a failing init leaves nothing; a running one is killed and removed by delete -f', () => {
  const failed = cli([
    'machine',
    'run',
    '-d',
    '--name',
    'eph',
    '--cpus',
    '1',
    '--memory',
    '256',
    '--init',
    'echo about to fail; exit 3',
  ]);
  expect(failed.status).toBe(1);
  expect(failed.stdout).toBe('');
  expect(failed.stderr).toContain('about to fail');
  expect(failed.stderr).toMatch(
    /^error: init command failed with exit code 3: echo about to fail; exit 3.*and run it again$/m,
  );
  expect(fs.readdirSync(machinesDir).filter((e) => e !== '.locks')).toEqual([]);
  expect(setup.qemus()).toEqual([]);

  const started = cli(['machine', 'run', '-d', '--name', 'eph', '--cpus', '1', '--memory', '256']);
  expect(started).toMatchObject({ status: 0, stdout: 'eph\n' });
  expect(cli(['machine', 'exec', '--name', 'eph', '--', 'true']).status).toBe(0);
  const rt = runtimeOf('eph');
  expect(cli(['machine', 'delete', 'eph', '-f']).status).toBe(0);
  expectNothingLeft(rt);
});

function readLog(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '(none)';
  }
}

async function until(what: string, check: () => boolean, ms = 60_000, detail?: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${detail ? `\n${detail()}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

it('a detached VM that ends by itself (QEMU killed) is removed by its supervisor', async () => {
  expect(cli(['machine', 'run', '-d', '--name', 'crash', '--cpus', '1', '--memory', '256']).status).toBe(0);
  const rt = runtimeOf('crash');
  process.kill(rt.vm.pid, 'SIGKILL');
  await until(
    'the ephemeral machine to be removed after its VM died',
    () => !fs.existsSync(path.join(machinesDir, 'crash')) && !isAlive(rt.pid),
  );
  expectNothingLeft(rt);
});

it('run -d interrupted (Ctrl-C) while the VM boots: the supervisor powers it off and removes the machine', async () => {
  const run = startSmolvm(['machine', 'run', '-d', '--name', 'intr', '--cpus', '1', '--memory', '256'], env);
  // Interrupted once the supervisor runs (its first log line): while the VM boots, as the title says.
  const log = path.join(machinesDir, 'intr', 'supervisor.log');
  await until('the supervisor to be started', () => fs.existsSync(log) && /starting machine/.test(readLog(log)));
  process.kill(run.pid, 'SIGINT');
  expect((await run.done).stdout).toBe('');
  // Removal renames the directory to a trash name (the machine is gone), then deletes it: both steps, on a loaded
  // host, after the boot ends and the VM is powered off (up to its stop grace).
  await until(
    'the interrupted machine to be removed',
    () => fs.readdirSync(machinesDir).filter((e) => e !== '.locks').length === 0 && setup.qemus().length === 0,
    150_000,
    () => `supervisor.log:\n${readLog(log)}`,
  );
  expect(fs.readdirSync(machinesDir).filter((e) => e !== '.locks')).toEqual([]);
  await until(
    'its run dir to go',
    () =>
      !fs.existsSync(path.join(setup.runtimeDir, 'smolvm')) ||
      fs.readdirSync(path.join(setup.runtimeDir, 'smolvm')).length === 0,
  );
});
