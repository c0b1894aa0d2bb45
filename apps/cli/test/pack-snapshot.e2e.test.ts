// A packed running machine, end to end (issue 20 item 5): a machine serving HTTP from a process
// started by exec, with a file in /workspace, is snapshotted, packed with --from-snapshot, and
// removed with its snapshot; `machine create --from` the pack then resumes it with the server
// still running and the file there. The same pack imported twice is one snapshot; a pack with a
// tampered state section is refused with one line; `pack run` and the packed executable's `run` resume
// a temporary machine for one command and remove it (also on SIGTERM); its `start` resumes it too.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { smolvmDirs } from '@smolvm/common';
import { CLI, e2eSetup, freePort, httpGet, ok, smolvm, type CliResult, type E2eSetup } from './helpers';

jest.setTimeout(900_000);

let setup: E2eSetup;
let env: NodeJS.ProcessEnv;
/** The packed executable's own machine (pack-<digest>), once known. */
let appMachine: string | undefined;
const SMALL = ['--cpus', '1', '--memory', '256', '--storage', '1', '--overlay', '1'];

function cli(args: string[], timeoutMs = 300_000): CliResult {
  return smolvm(args, env, undefined, timeoutMs);
}

function exec(name: string, script: string): CliResult {
  return cli(['machine', 'exec', '--name', name, '--', '/bin/sh', '-c', script]);
}

function machineNames(): string[] {
  return (JSON.parse(ok(cli(['machine', 'ls', '--json']))) as Array<{ name: string }>).map((m) => m.name);
}

/** Machine supervisors still running with this test's home (pinned in their environment). */
function supervisors(): string[] {
  return spawnSync('pgrep', ['-f', '_supervise'], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`SMOLVM_HOME=${setup.home}`);
      } catch {
        return false;
      }
    });
}

async function waitUntil(done: () => boolean, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  setup = await e2eSetup('smolvm-pack-snapshot-e2e-');
  env = setup.env;
});

afterAll(async () => {
  for (const name of ['src', 'copy', 'copy2', ...(appMachine ? [appMachine] : [])])
    cli(['machine', 'delete', name, '-f']);
  expect(setup.qemus()).toEqual([]);
  await setup.close();
});

it('a running machine packed from its snapshot resumes elsewhere with its process running', async () => {
  const srcPort = await freePort();
  ok(cli(['machine', 'create', 'src', ...SMALL, '-p', `${srcPort}:8080`]));
  ok(cli(['machine', 'start', '--name', 'src']));
  ok(
    exec(
      'src',
      'mkdir -p /tmp/www && echo from-tmp > /tmp/www/t.txt && echo from-workspace > /workspace/w.txt && httpd -p 8080 -h /tmp/www',
    ),
  );
  expect(await httpGet(srcPort, 't.txt')).toBe('200 from-tmp');
  ok(cli(['machine', 'snapshot', 'create', 'src', '--tag', 'ready']));

  const out = path.join(setup.home, 'web');
  expect(ok(cli(['pack', 'create', '--from-snapshot', 'src:ready', '-o', out])).trim()).toBe(out);
  const payload = `${out}.smolmachine`;
  const inspect = JSON.parse(ok(cli(['pack', 'inspect', payload, '--json']))) as {
    version: number;
    digest: string;
    payload_offset: number;
    snapshot: { id: string; nic: boolean };
    sections: Array<{ name: string; offset: number; size: number }>;
  };
  expect(inspect.version).toBe(3); // a snapshot (2) and a compressed kernel (3)
  expect(inspect.snapshot).toMatchObject({ id: 'src:ready', nic: true });
  expect(inspect.sections.map((s) => s.name)).toEqual(
    expect.arrayContaining(['kernel', 'agent', 'overlay', 'storage', 'memory', 'state']),
  );
  expect(ok(cli(['pack', 'inspect', payload]))).toContain('snapshot:      running machine src:ready: its RAM');
  // Booting it is refused: its disks belong to a running guest.
  const cold = cli(['pack', 'run', '--sidecar', payload, '--cold', '--', 'true']);
  expect(cold.status).toBe(2);
  expect(cold.stderr).toContain('this pack holds a running machine, which is resumed');

  // The source and its snapshot are gone: only the pack remains.
  ok(cli(['machine', 'delete', 'src', '-f']));
  ok(cli(['machine', 'snapshot', 'rm', 'src:ready']));

  // A tampered device state is refused with one line, and nothing is imported. (Once the good pack
  // is imported, a file with its digest reuses that verified snapshot: its own bytes are not used.)
  const bad = path.join(setup.home, 'bad.smolmachine');
  fs.copyFileSync(payload, bad);
  const state = inspect.sections.find((s) => s.name === 'state')!;
  const fd = fs.openSync(bad, 'r+');
  const at = inspect.payload_offset + state.offset + Math.floor(state.size / 2);
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, at);
  fs.writeSync(fd, Buffer.from([b[0]! ^ 0xff]), 0, 1, at);
  fs.closeSync(fd);
  const refused = cli(['machine', 'create', 'bad', '--from', bad]);
  expect(refused.status).not.toBe(0);
  expect(refused.stderr.trim().split('\n')).toHaveLength(1);
  expect(refused.stderr).toContain('its state section does not match its sha256');
  expect(JSON.parse(ok(cli(['machine', 'snapshot', 'ls', '--json'])))).toEqual([]);

  // Its shape is the saved VM's: settings other than the network are refused before anything is imported.
  const shaped = cli(['machine', 'create', 'big', '--from', payload, '--memory', '512']);
  expect(shaped.status).toBe(2);
  expect(shaped.stderr).toContain("--from of a packed running machine copies the machine's settings; --memory");

  const port = await freePort();
  ok(cli(['machine', 'create', 'copy', '--from', payload, '-p', `${port}:8080`]));
  ok(cli(['machine', 'start', '--name', 'copy']));
  // The server started by exec in the source answers, unrestarted, and the file is there.
  expect(await httpGet(port, 't.txt')).toBe('200 from-tmp');
  expect(ok(exec('copy', 'cat /workspace/w.txt')).trim()).toBe('from-workspace');

  // A second machine from the same pack reuses the imported snapshot.
  ok(cli(['machine', 'create', 'copy2', '--from', payload]));
  const snapshots = JSON.parse(ok(cli(['machine', 'snapshot', 'ls', '--json']))) as Array<{
    id: string;
    dependents: string[];
  }>;
  expect(snapshots).toHaveLength(1);
  expect(snapshots[0]!.id).toMatch(/^pack-[0-9a-f]{12}:ready$/);
  expect(snapshots[0]!.dependents).toEqual(['copy', 'copy2']);
  ok(cli(['machine', 'delete', 'copy', '-f']));

  // `pack run` resumes a temporary machine from the imported snapshot, runs the command in it
  // (the server still answers inside, the file is there), passes its exit code through, and
  // leaves no machine, supervisor or QEMU behind.
  const once = cli([
    'pack',
    'run',
    '--sidecar',
    payload,
    '--',
    '/bin/sh',
    '-c',
    'cat /workspace/w.txt && wget -qO- http://127.0.0.1:8080/t.txt && exit 7',
  ]);
  expect(once.stdout).toBe('from-workspace\nfrom-tmp\n');
  expect(once.status).toBe(7);
  expect(machineNames()).toEqual(['copy2']);
  expect(setup.qemus()).toEqual([]);
  expect(supervisors()).toEqual([]);

  // SIGTERM while the command runs: the command gets it (143), and the machine goes all the same.
  const run = spawn(
    process.execPath,
    [CLI, 'pack', 'run', '--sidecar', payload, '--', '/bin/sh', '-c', 'echo running; exec sleep 600'],
    { env: { ...process.env, ...env } },
  );
  let runOut = '';
  run.stdout.on('data', (d: Buffer) => (runOut += d.toString()));
  const ended = new Promise<number | null>((resolve) => run.on('close', resolve));
  await waitUntil(() => runOut.includes('running'), 300_000);
  expect(supervisors()).toHaveLength(1);
  run.kill('SIGTERM');
  expect(await ended).toBe(143);
  expect(machineNames()).toEqual(['copy2']);
  expect(setup.qemus()).toEqual([]);
  expect(supervisors()).toEqual([]);
  // SIGTERM while its machine is being resumed (its record just made): the run ends once that step
  // is done, saying so, and removes the machine all the same.
  const machinesDir = path.join(smolvmDirs(env).data, 'machines');
  const early = spawn(process.execPath, [CLI, 'pack', 'run', '--sidecar', payload, '--', 'true'], {
    env: { ...process.env, ...env },
  });
  let earlyErr = '';
  early.stderr.on('data', (d: Buffer) => (earlyErr += d.toString()));
  const earlyEnd = new Promise<number | null>((resolve) => early.on('close', resolve));
  await waitUntil(() => fs.readdirSync(machinesDir).some((e) => e.startsWith('run-')), 300_000);
  early.kill('SIGTERM');
  expect(await earlyEnd).toBe(143);
  expect(earlyErr).toContain('interrupted by SIGTERM before the command started');
  expect(machineNames()).toEqual(['copy2']);
  expect(setup.qemus()).toEqual([]);
  expect(supervisors()).toEqual([]);
  // The run reused the imported snapshot: still one, and the runs are not among its dependents.
  expect(JSON.parse(ok(cli(['machine', 'snapshot', 'ls', '--json'])))).toMatchObject([{ dependents: ['copy2'] }]);

  // The packed executable's start resumes a machine of its own from the same snapshot.
  const app = (args: string[]): CliResult => {
    const r = spawnSync(out, args, { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 300_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  // Its `run` is the one-shot form, as `pack run`.
  expect(ok(app(['run', '--', 'cat', '/workspace/w.txt'])).trim()).toBe('from-workspace');
  expect(machineNames()).toEqual(['copy2']);
  appMachine = `pack-${inspect.digest.slice(7, 19)}`;
  ok(app(['start']));
  expect(ok(app(['exec', '--', 'wget', '-qO-', 'http://127.0.0.1:8080/t.txt'])).trim()).toBe('from-tmp');
  ok(app(['stop']));
  ok(cli(['machine', 'delete', appMachine, '-f']));
});
