// Warm `machine start` end to end, what the persistence tests (machine.e2e, machine-cold.e2e) do
// not show: machines of one shape share one boot snapshot, and nothing one of them does reaches
// the snapshot or the next machine restored from it (the attacker is the guest of the first);
// a guest cannot write past its disk through the larger slot it was restored with; a damaged
// snapshot falls back to a cold boot, and the next start rebuilds it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { e2eSetup, smolvm, type CliResult, type E2eSetup } from './helpers';

jest.setTimeout(300_000);

let setup: E2eSetup;
let home: string;
let env: NodeJS.ProcessEnv;

const SMALL = ['--cpus', '1', '--memory', '256', '--storage', '1', '--overlay', '1'];

function cli(args: string[]): CliResult {
  return smolvm(args, env, undefined, 240_000);
}

function exec(name: string, script: string): CliResult {
  return cli(['machine', 'exec', '--name', name, '--', '/bin/sh', '-c', script]);
}

function lastStart(name: string): string | undefined {
  const log = fs.readFileSync(path.join(home, 'data', 'machines', name, 'supervisor.log'), 'utf8');
  return /ready after \d+ ms \((restored|booted)/.exec(
    log
      .split('\n')
      .filter((l) => l.includes(' ready after '))
      .pop() ?? '',
  )?.[1];
}

/** The boot snapshots of machine shapes (they have disk slots). */
function machineSnapshots(): string[] {
  const root = path.join(home, 'cache', 'vmsnap');
  return fs
    .readdirSync(root)
    .filter((n) => !n.startsWith('.') && fs.existsSync(path.join(root, n, 'overlay-slot.img')))
    .map((n) => path.join(root, n));
}

function hashFiles(dir: string): Record<string, string> {
  return Object.fromEntries(
    fs
      .readdirSync(dir)
      .sort()
      .filter((f) => !f.endsWith('-slot.img') && f !== 'slot.img')
      .map((f) => [
        f,
        crypto
          .createHash('sha256')
          .update(fs.readFileSync(path.join(dir, f)))
          .digest('hex'),
      ]),
  );
}

beforeAll(async () => {
  setup = await e2eSetup('smolvm-machine-snap-e2e-');
  ({ home, env } = setup);
});

afterAll(async () => {
  for (const name of ['a', 'b']) cli(['machine', 'delete', name, '-f']);
  expect(setup.qemus()).toEqual([]);
  await setup.close();
});

describe('machines sharing a boot snapshot', () => {
  it('nothing the first machine does reaches the snapshot or the second: files, processes, RAM, RNG, clock', () => {
    for (const name of ['a', 'b']) expect(cli(['machine', 'create', name, ...SMALL]).status).toBe(0);
    expect(cli(['machine', 'start', '--name', 'a']).status).toBe(0);
    expect(lastStart('a')).toBe('restored');
    const [snapshot] = machineSnapshots();
    expect(machineSnapshots()).toHaveLength(1);
    const before = hashFiles(snapshot);

    // The first machine's guest, as root: secrets on every kind of storage, a process left
    // running, 64 MiB of its RAM dirtied.
    const a = exec(
      'a',
      [
        'echo secret-a > /etc/secret-a',
        'echo secret-a > /workspace/secret-a',
        'dd if=/dev/urandom of=/dev/shm/fill bs=1M count=64 2>/dev/null',
        'setsid sleep 6001 </dev/null >/dev/null 2>&1 &',
        'head -c 16 /dev/urandom | od -An -tx1 | tr -d " \\n"',
      ].join('\n'),
    );
    expect(a.stderr).toBe('');
    expect(a.status).toBe(0);
    const randomA = a.stdout;
    expect(randomA).toMatch(/^[0-9a-f]{32}$/);
    expect(cli(['machine', 'stop', '--name', 'a']).status).toBe(0);
    // Restores map the snapshot's RAM copy-on-write: the file is as it was saved.
    expect(hashFiles(snapshot)).toEqual(before);

    expect(cli(['machine', 'start', '--name', 'b']).status).toBe(0);
    expect(lastStart('b')).toBe('restored');
    expect(machineSnapshots()).toEqual([snapshot]);
    const b = exec(
      'b',
      'hostname; ls /etc/secret-a /workspace/secret-a /dev/shm/fill 2>&1 | wc -l; ls /dev/shm | wc -l; ps -o args | grep -c "^sleep 6001"; date +%s; head -c 16 /dev/urandom | od -An -tx1 | tr -d " \\n"',
    );
    const [hostname, missing, shm, sleepers, clock, randomB] = b.stdout.split('\n');
    expect({ hostname, missing, shm, sleepers }).toEqual({ hostname: 'b', missing: '3', shm: '0', sleepers: '0' });
    // The clock is the host's, not the snapshot's; the RNG is reseeded for every restore.
    expect(Math.abs(Number(clock) - Date.now() / 1000)).toBeLessThan(120);
    expect(randomB).toMatch(/^[0-9a-f]{32}$/);
    expect(randomB).not.toBe(randomA);
    // And the first machine kept what it wrote.
    expect(cli(['machine', 'start', '--name', 'a']).status).toBe(0);
    expect(exec('a', 'cat /etc/secret-a /workspace/secret-a').stdout).toBe('secret-a\nsecret-a\n');
    expect(cli(['machine', 'stop', '--name', 'a']).status).toBe(0);
  });

  it('a restored guest cannot write past its disk through the larger slot it sees', () => {
    const disk = path.join(home, 'data', 'machines', 'b', 'storage.ext4');
    const size = fs.statSync(disk).size;
    const dev = 'for d in /sys/block/*; do [ "$(cat $d/serial 2>/dev/null)" = smolvm-storage ] && echo ${d##*/}; done';
    // 2 GiB into a 1 GiB disk: the guest's block layer allows it (the slot is larger), QEMU must not.
    const r = exec(
      'b',
      `dev=$(${dev}); dd if=/dev/zero of=/dev/$dev bs=4096 seek=524288 count=1 conv=fsync 2>/dev/null && echo written || echo refused`,
    );
    expect(r.stdout).toBe('refused\n');
    expect(fs.statSync(disk).size).toBe(size);
    expect(exec('b', 'echo still > /workspace/still && cat /workspace/still').stdout).toBe('still\n');
  });

  it('a damaged snapshot falls back to a cold boot (--debug says why), and the next start rebuilds it', () => {
    expect(exec('b', 'echo before-damage > /workspace/kept').status).toBe(0);
    expect(cli(['machine', 'stop', '--name', 'b']).status).toBe(0);
    const [snapshot] = machineSnapshots();
    // The guest's RAM zeroed at the same size: every file check passes, only the restore fails.
    const memory = path.join(snapshot, 'memory');
    const size = fs.statSync(memory).size;
    fs.truncateSync(memory, 0);
    fs.truncateSync(memory, size);
    const started = cli(['machine', 'start', '--name', 'b', '--debug']);
    expect(started.status).toBe(0);
    expect(started.stderr).toMatch(
      /^smolvm: note: restoring the boot snapshot failed \(.*\): cold boot; the snapshot is dropped and rebuilt by the next start$/m,
    );
    expect(lastStart('b')).toBe('booted');
    expect(machineSnapshots()).toEqual([]);
    expect(exec('b', 'cat /workspace/kept').stdout).toBe('before-damage\n');
    expect(cli(['machine', 'stop', '--name', 'b']).status).toBe(0);
    const again = cli(['machine', 'start', '--name', 'b', '--debug']);
    expect(again.stderr).toMatch(
      /^smolvm: note: no boot snapshot for this VM shape yet: cold boot to save one, then restore it$/m,
    );
    expect(lastStart('b')).toBe('restored');
    expect(exec('b', 'cat /workspace/kept').stdout).toBe('before-damage\n');
  });
});
