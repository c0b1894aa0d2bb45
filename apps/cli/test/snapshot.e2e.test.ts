// Snapshots and forks of running machines, end to end (issue 20's acceptance): a machine serving
// HTTP from a process started by exec, with files in /tmp and /workspace, is snapshotted while
// running; forks answer on their own ports without a restart, see its files, keep their own
// writes to themselves, and differ in RNG output and hostname. A `snapshot create` killed at any
// point leaves a complete snapshot or none; a damaged one is refused with one line; a snapshot
// machines are built on cannot be removed until they are deleted.
import fs from 'node:fs';
import path from 'node:path';
import { e2eSetup, freePort, httpGet, ok, smolvm, startSmolvm, type CliResult, type E2eSetup } from './helpers';

jest.setTimeout(1_500_000);

let setup: E2eSetup;
let env: NodeJS.ProcessEnv;
const FORKS = 5;
const SMALL = ['--cpus', '1', '--memory', '256', '--storage', '1', '--overlay', '1'];
const forks = Array.from({ length: FORKS }, (_, i) => `f${i + 1}`);

function cli(args: string[], timeoutMs = 300_000): CliResult {
  return smolvm(args, env, undefined, timeoutMs);
}

function exec(name: string, script: string): CliResult {
  return cli(['machine', 'exec', '--name', name, '--', '/bin/sh', '-c', script]);
}

/** Every save the supervisor began has ended (saved or failed), by its log. */
async function supervisorIdle(): Promise<void> {
  const log = path.join(setup.home, 'data', 'machines', 'src', 'supervisor.log');
  // A request written just before the kill may still be on its way.
  await new Promise((r) => setTimeout(r, 1000));
  for (let i = 0; i < 240; i++) {
    const text = fs.readFileSync(log, 'utf8');
    const began = text.split('snapshot: requested').length;
    const ended = text.split('snapshot: saved').length + text.split('snapshot: failed').length - 1;
    if (began === ended) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error('the supervisor did not finish its snapshot within 2 minutes');
}

function snapshotsDir(): string {
  return path.join(setup.home, 'data', 'snapshots');
}

beforeAll(async () => {
  setup = await e2eSetup('smolvm-snapshot-e2e-');
  env = setup.env;
});

afterAll(async () => {
  for (const name of ['src', ...forks, 'ff-1', 'ff-2']) cli(['machine', 'delete', name, '-f']);
  expect(setup.qemus()).toEqual([]);
  await setup.close();
});

describe('snapshots of a running machine', () => {
  let ports: number[];

  it('forks resume the running server, see its files, keep their writes and differ in identity', async () => {
    const srcPort = await freePort();
    ok(cli(['machine', 'create', 'src', ...SMALL, '-p', `${srcPort}:8080`]));
    ok(cli(['machine', 'start', '--name', 'src']));
    ok(
      exec(
        'src',
        'mkdir -p /tmp/www && echo from-tmp > /tmp/www/t.txt && echo from-workspace > /workspace/w.txt && cp /workspace/w.txt /tmp/www/ && httpd -p 8080 -h /tmp/www',
      ),
    );
    expect(await httpGet(srcPort, 't.txt')).toBe('200 from-tmp');
    // Read before the snapshot: the kernel fixes boot_id at its first read.
    const srcBootId = ok(exec('src', 'cat /proc/sys/kernel/random/boot_id')).trim();

    const created = JSON.parse(ok(cli(['machine', 'snapshot', 'create', 'src', '--json']))) as {
      id: string;
      running: boolean;
      sizeBytes: number;
      pausedMs: number;
    };
    expect(created).toMatchObject({ id: 'src:1', running: true });
    expect(created.sizeBytes).toBeGreaterThan(0);
    // The source runs on, unchanged.
    expect(await httpGet(srcPort, 't.txt')).toBe('200 from-tmp');
    // A second snapshot with that tag is refused with one line.
    const again = cli(['machine', 'snapshot', 'create', 'src', '--tag', '1']);
    expect(again.status).not.toBe(0);
    expect(again.stderr.trim().split('\n')).toHaveLength(1);
    expect(again.stderr).toContain('snapshot "src:1" already exists');

    ports = await Promise.all(forks.map(() => freePort()));
    for (const [i, name] of forks.entries()) {
      if (i === FORKS - 1) {
        // The one-step form: `fork` of a snapshot id creates and starts the copy (no new snapshot).
        expect(ok(cli(['machine', 'fork', 'src:1', name, '-p', `${ports[i]}:8080`]))).toBe(`${name}\n`);
        continue;
      }
      ok(cli(['machine', 'create', name, '--from-snapshot', 'src:1', '-p', `${ports[i]}:8080`]));
      ok(cli(['machine', 'start', '--name', name]));
    }
    for (const [i, name] of forks.entries()) {
      // The server the source started by exec answers without a restart, with the source's files.
      expect(await httpGet(ports[i], 't.txt')).toBe('200 from-tmp');
      expect(await httpGet(ports[i], 'w.txt')).toBe('200 from-workspace');
      expect(ok(exec(name, 'cat /workspace/w.txt; hostname')).trim().split('\n')).toEqual(['from-workspace', name]);
      ok(exec(name, `echo ${name} > /workspace/own.txt && echo ${name} > /tmp/www/own.txt`));
    }
    for (const [i, name] of forks.entries()) {
      expect(await httpGet(ports[i], 'own.txt')).toBe(`200 ${name}`);
      expect(ok(exec(name, 'cat /workspace/own.txt')).trim()).toBe(name);
    }
    // The source saw none of it.
    expect(exec('src', 'cat /workspace/own.txt').status).not.toBe(0);
    expect((await httpGet(srcPort, 'own.txt')).startsWith('404')).toBe(true);
    // Each fork's kernel RNG was reseeded apart.
    const random = forks.map((name) => ok(exec(name, 'head -c 32 /dev/urandom | od -An -tx1 | tr -d " \\n"')).trim());
    expect(new Set(random).size).toBe(FORKS);
    for (const r of random) expect(r).toMatch(/^[0-9a-f]{64}$/);
    // And each has a boot_id of its own (the source keeps its own).
    const bootIds = forks.map((name) => ok(exec(name, 'cat /proc/sys/kernel/random/boot_id')).trim());
    expect(new Set([srcBootId, ...bootIds]).size).toBe(FORKS + 1);
    for (const b of bootIds) expect(b).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(ok(exec('src', 'cat /proc/sys/kernel/random/boot_id')).trim()).toBe(srcBootId);

    // In use: removal refused with one line naming the machines.
    const rm = cli(['machine', 'snapshot', 'rm', 'src:1']);
    expect(rm.status).not.toBe(0);
    expect(rm.stderr).toContain('is in use by machines "f1", "f2"');
    const listed = JSON.parse(ok(cli(['machine', 'snapshot', 'ls', '--json']))) as Array<{
      id: string;
      dependents: string[];
    }>;
    expect(listed).toEqual([expect.objectContaining({ id: 'src:1', dependents: forks })]);
  });

  it('a fork stops and starts again (warm, its qcow2 disks in the boot snapshot slots), keeps its own files, refuses resize', () => {
    ok(cli(['machine', 'stop', '--name', 'f1']));
    ok(cli(['machine', 'start', '--name', 'f1']));
    // Restored from the boot snapshot of its shape, with its qcow2 disks in the disk slots.
    const log = fs.readFileSync(path.join(setup.home, 'data', 'machines', 'f1', 'supervisor.log'), 'utf8');
    expect(
      log
        .split('\n')
        .filter((l) => l.includes(' ready after '))
        .pop(),
    ).toContain('restored from a boot snapshot');
    expect(ok(exec('f1', 'cat /workspace/own.txt /workspace/w.txt')).trim().split('\n')).toEqual([
      'f1',
      'from-workspace',
    ]);
    const resize = cli(['machine', 'resize', '--name', 'f1', '--storage', '2']);
    expect(resize.status).not.toBe(0);
  });

  it('deleting the dependents makes the snapshot removable', () => {
    for (const name of forks) ok(cli(['machine', 'delete', name, '-f']));
    ok(cli(['machine', 'snapshot', 'rm', 'src:1']));
    expect(JSON.parse(ok(cli(['machine', 'snapshot', 'ls', '--json'])))).toEqual([]);
  });
});

describe('machine fork', () => {
  it('snapshots the running source and starts COUNT copies, NEW-1..NEW-COUNT, with no ports', () => {
    const out = JSON.parse(ok(cli(['machine', 'fork', 'src', 'ff', '-n', '2', '--json']))) as {
      snapshot: { id: string; running: boolean };
      machines: string[];
    };
    expect(out.machines).toEqual(['ff-1', 'ff-2']);
    expect(out.snapshot.running).toBe(true);
    for (const name of out.machines) {
      expect(ok(exec(name, 'hostname; cat /workspace/w.txt')).trim().split('\n')).toEqual([name, 'from-workspace']);
      const record = JSON.parse(
        fs.readFileSync(path.join(setup.home, 'data', 'machines', name, 'machine.json'), 'utf8'),
      ) as { ports: unknown[]; fromSnapshot: string };
      expect(record).toMatchObject({ ports: [], fromSnapshot: out.snapshot.id });
    }
    // -p cannot go to several copies.
    const r = cli(['machine', 'fork', 'src', 'fp', '-n', '2', '-p', '18999:8080']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('-p cannot be given to several forks');
    // A snapshot id that does not exist: one line, no machine, no new snapshot.
    const missing = cli(['machine', 'fork', 'src:404', 'fm']);
    expect(missing.status).not.toBe(0);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toContain('snapshot "src:404" does not exist');
    expect(fs.existsSync(path.join(setup.home, 'data', 'machines', 'fm'))).toBe(false);
    for (const name of out.machines) ok(cli(['machine', 'delete', name, '-f']));
    ok(cli(['machine', 'snapshot', 'rm', out.snapshot.id]));
  });
});

describe('crash safety and damage', () => {
  it('a snapshot create killed at any point leaves a complete snapshot or none', async () => {
    const outcomes: string[] = [];
    for (const delayMs of [200, 700, 1500, 3000]) {
      const tag = `k${delayMs}`;
      const run = startSmolvm(['machine', 'snapshot', 'create', 'src', '--tag', tag], env);
      await new Promise((r) => setTimeout(r, delayMs));
      let killed = true;
      try {
        process.kill(run.pid, 'SIGKILL');
      } catch {
        killed = false; // it had finished
      }
      const result = await run.done;
      // A killed command's save goes on in the supervisor: wait for it before the next one.
      await supervisorIdle();
      const dir = path.join(snapshotsDir(), 'src', tag);
      if (!killed) expect(result.status).toBe(0);
      if (fs.existsSync(dir)) {
        // Complete: verified (every file and its size) when a machine is made from it.
        ok(cli(['machine', 'create', tag, '--from-snapshot', `src:${tag}`]));
        ok(cli(['machine', 'delete', tag]));
        outcomes.push(`${tag}: complete`);
      } else {
        outcomes.push(`${tag}: absent`);
      }
    }
    expect(outcomes).toHaveLength(4);
    // The supervisor may still be saving for a killed command: the next create waits its turn,
    // and sweeps the dead commands' staging directories.
    let final: CliResult | undefined;
    for (let i = 0; i < 60; i++) {
      final = cli(['machine', 'snapshot', 'create', 'src', '--tag', 'final']);
      if (final.status === 0 || !final.stderr.includes('another snapshot')) break;
      await new Promise((r) => setTimeout(r, 2000));
    }
    ok(final as CliResult);
    expect(fs.readdirSync(path.join(snapshotsDir(), '.staging'))).toEqual([]);
    // The source ran on through all of it.
    expect(ok(exec('src', 'echo alive')).trim()).toBe('alive');
    const listed = JSON.parse(ok(cli(['machine', 'snapshot', 'ls', '--json']))) as Array<{ id: string }>;
    for (const s of listed) ok(cli(['machine', 'snapshot', 'rm', s.id]));
  });

  it('a damaged snapshot is refused with one line', () => {
    ok(cli(['machine', 'snapshot', 'create', 'src', '--tag', 'dmg']));
    const state = path.join(snapshotsDir(), 'src', 'dmg', 'vm', 'state');
    fs.chmodSync(state, 0o600);
    fs.truncateSync(state, 100);
    const r = cli(['machine', 'create', 'broken', '--from-snapshot', 'src:dmg']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('snapshot "src:dmg" is damaged: vm/state is 100 bytes');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    ok(cli(['machine', 'snapshot', 'rm', 'src:dmg']));
  });

  it('a machine booted --cold cannot be snapshotted while running (one line); stopped it can', () => {
    ok(cli(['machine', 'stop', '--name', 'src']));
    ok(cli(['machine', 'start', '--name', 'src', '--cold']));
    const r = cli(['machine', 'snapshot', 'create', 'src']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('was booted cold');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(ok(exec('src', 'cat /workspace/w.txt')).trim()).toBe('from-workspace');
    ok(cli(['machine', 'stop', '--name', 'src']));
    const stopped = JSON.parse(ok(cli(['machine', 'snapshot', 'create', 'src', '--json']))) as {
      id: string;
      running: boolean;
    };
    expect(stopped.running).toBe(false);
    ok(cli(['machine', 'snapshot', 'rm', stopped.id]));
  });
});
