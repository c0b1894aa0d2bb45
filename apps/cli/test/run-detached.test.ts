// `machine run -d` without booting a VM: what it refuses before anything is created, and how an
// ephemeral machine shows up in ls/status and goes away on stop (the VM lifecycle itself is in
// run-detached.e2e.test.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MachineStore } from '@smolvm/machine-store';
import { smolvm } from './helpers';

let home: string;
let env: NodeJS.ProcessEnv;
let store: MachineStore;
let machinesDir: string;

beforeEach(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-rund-'));
  env = { SMOLVM_HOME: home };
  machinesDir = path.join(home, 'data', 'machines');
  store = new MachineStore(machinesDir);
});
afterEach(() => fs.rmSync(home, { recursive: true, force: true }));

function oneErrorLine(r: { stderr: string }): string {
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines).toHaveLength(1);
  return lines[0];
}

function machineNames(): string[] {
  return fs.existsSync(machinesDir) ? fs.readdirSync(machinesDir).filter((e) => !e.startsWith('.')) : [];
}

describe('machine run -d refuses what makes no sense detached, before creating anything', () => {
  it.each([
    [
      ['-d', '--', 'echo', 'hi'],
      /^error: machine run -d takes no command \(got "echo hi"\).*smolvm machine exec --name NAME -- echo hi/,
    ],
    [['-d', '-i'], /^error: -i and -t attach a command to this terminal.*machine exec --name NAME -it -- \/bin\/sh/],
    [['-d', '--name', 'x', '-t'], /^error: -i and -t .*machine exec --name x -it/],
    [['--name', 'x', '--', 'true'], /^error: --name names the machine of machine run -d.*add -d/],
    [['-d', '--name', '../etc'], /^error: .*name/],
    [['-d', '--driver', 'nope'], /^error: unknown driver 'nope' \(from --driver\); use one of: kvm/],
  ])('run %j: usage error, exit 2', (flags, message) => {
    const r = smolvm(['machine', 'run', ...flags], env);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(oneErrorLine(r)).toMatch(message);
    expect(machineNames()).toEqual([]);
  });

  it('a taken name is a conflict naming the fix, and the existing machine is left alone', async () => {
    const before = await store.create({ name: 'taken' });
    const r = smolvm(['machine', 'run', '-d', '--name', 'taken'], env);
    expect(r.status).toBe(1);
    expect(oneErrorLine(r)).toMatch(/^error: machine "taken" already exists.*smolvm machine delete taken/);
    expect(store.get('taken')).toEqual(before);
  });

  it('documents -d with the reference example in --help', () => {
    const r = smolvm(['machine', 'run', '--help'], env);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('machine run -d -s Smolfile');
    expect(r.stdout).toMatch(/--detach, -d|-d, --detach/);
  });
});

describe('an ephemeral machine whose VM is gone (supervisor killed)', () => {
  beforeEach(async () => {
    // A supervisor pid that cannot be alive: what a SIGKILLed supervisor leaves in the record.
    await store.create({
      name: 'run-dead',
      ephemeral: true,
      runtime: {
        pid: 2 ** 22 + 7,
        startTime: 1,
        socket: path.join(home, 'gone.sock'),
        startedAt: new Date().toISOString(),
      },
    });
    fs.writeFileSync(path.join(machinesDir, 'run-dead', 'storage.ext4'), 'disk');
  });

  it('is listed and shown with the ephemeral marker', () => {
    const table = smolvm(['machine', 'ls'], env);
    expect(table.stdout.trimEnd().split('\n')[1]).toMatch(/^run-dead\s+stopped \(ephemeral\)\s+\(bare\)/);
    expect(JSON.parse(smolvm(['machine', 'ls', '--json'], env).stdout)).toMatchObject([
      { name: 'run-dead', state: 'stopped', ephemeral: true },
    ]);
    const status = smolvm(['machine', 'status', '--name', 'run-dead'], env).stdout;
    expect(status).toMatch(/^state:\s+stopped \(ephemeral\)$/m);
    expect(status).toMatch(/^kind:\s+ephemeral \(machine run -d\)/m);
  });

  it('is never started again', () => {
    const r = smolvm(['machine', 'start', '--name', 'run-dead'], env);
    expect(r.status).toBe(1);
    expect(oneErrorLine(r)).toMatch(
      /^error: machine "run-dead" was started by `machine run -d` and has ended.*smolvm machine delete run-dead/,
    );
    expect(machineNames()).toEqual(['run-dead']);
  });

  it('is refused by monitor, which would restart it', () => {
    const r = smolvm(['machine', 'monitor', '--name', 'run-dead'], env);
    expect(r.status).toBe(1);
    expect(oneErrorLine(r)).toMatch(
      /^error: machine monitor restarts machines, and machine "run-dead" is ephemeral.*smolvm machine create NAME/,
    );
    expect(machineNames()).toEqual(['run-dead']);
  });

  it('is refused by prune and resize, which are for persistent machines', () => {
    for (const cmd of [['prune'], ['resize', '--cpus', '2']]) {
      const r = smolvm(['machine', ...cmd, '--name', 'run-dead'], env);
      expect(r.status).toBe(1);
      expect(oneErrorLine(r)).toMatch(/is for persistent machines; machine "run-dead" is ephemeral/);
    }
  });

  it('machine stop removes it with its directory and disks: nothing is left', () => {
    const r = smolvm(['machine', 'stop', '--name', 'run-dead'], env);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('machine "run-dead" removed (ephemeral)\n');
    expect(machineNames()).toEqual([]);
    expect(fs.readdirSync(machinesDir).filter((e) => e !== '.locks')).toEqual([]);
    expect(JSON.parse(smolvm(['machine', 'ls', '--json'], env).stdout)).toEqual([]);
  });
});
