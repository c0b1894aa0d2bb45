// A hostile guest (root in a persistent machine) trying to grow the host's disk or memory through
// what the host keeps of it: its serial console log (held open by QEMU, unlinked, so invisible)
// and supervisor.log (a line per denied packet). The built CLI and a real VM; one machine shared.
import fs from 'node:fs';
import path from 'node:path';
import { e2eSetup, smolvm, type CliResult, type E2eSetup } from '../helpers';

jest.setTimeout(600_000);

let setup: E2eSetup;
let env: NodeJS.ProcessEnv;
const NAME = 'caps';

function cli(args: string[]): CliResult {
  return smolvm(args, env, undefined, 300_000);
}

function exec(script: string): CliResult {
  return cli(['machine', 'exec', '--name', NAME, '--', '/bin/sh', '-c', script]);
}

function machineDir(): string {
  return path.join(setup.home, 'data', 'machines', NAME);
}

/** QEMU's descriptor of the console log, as a path (the file itself is unlinked). */
function consoleLogFd(): string {
  const record = JSON.parse(fs.readFileSync(path.join(machineDir(), 'machine.json'), 'utf8')) as {
    runtime: { vm: { pid: number } };
  };
  const fds = `/proc/${record.runtime.vm.pid}/fd`;
  for (const fd of fs.readdirSync(fds)) {
    let target = '';
    try {
      target = fs.readlinkSync(path.join(fds, fd));
    } catch {
      continue;
    }
    if (/\/console\.log( \(deleted\))?$/.test(target)) return path.join(fds, fd);
  }
  throw new Error(`no console log among the descriptors of QEMU ${record.runtime.vm.pid}`);
}

const allocated = (fd: string): number => fs.statSync(fd).blocks * 512;

function tail(fd: string, bytes = 4096): string {
  const handle = fs.openSync(fd, 'r');
  try {
    const size = fs.fstatSync(handle).size;
    const buf = Buffer.alloc(Math.min(size, bytes));
    fs.readSync(handle, buf, 0, buf.length, size - buf.length);
    return buf.toString('latin1');
  } finally {
    fs.closeSync(handle);
  }
}

beforeAll(async () => {
  setup = await e2eSetup('smolvm-caps-e2e-');
  env = setup.env;
  const created = cli([
    'machine',
    'create',
    NAME,
    '--cpus',
    '1',
    '--memory',
    '256',
    '--storage',
    '1',
    '--overlay',
    '1',
    '--outbound-localhost-only',
  ]);
  expect(created.status).toBe(0);
  const started = cli(['machine', 'start', '--name', NAME]);
  expect(started.stderr).not.toContain('error');
  expect(started.status).toBe(0);
});

afterAll(async () => {
  cli(['machine', 'delete', NAME, '-f']);
  expect(setup.qemus()).toEqual([]);
  await setup.close();
});

it('keeps the console log a guest floods under its bound, and its tail readable', async () => {
  const MiB = 1024 * 1024;
  // 6 MiB of text into the serial console, then a last line to find in the tail.
  const flood = exec(
    'yes "flooding the console from a hostile guest, over and over again......" | head -c 6291456 > /dev/console; echo "caps: the flood is over" > /dev/console; echo done',
  );
  expect(flood.stdout).toBe('done\n');
  expect(flood.status).toBe(0);
  const fd = consoleLogFd();
  // The trim runs every second: the bound holds once it has had its turn.
  const deadline = Date.now() + 30_000;
  while (allocated(fd) > MiB && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
  expect(allocated(fd)).toBeLessThanOrEqual(MiB);
  expect(fs.statSync(fd).size).toBeGreaterThan(6 * MiB);
  // The tail is intact: crash diagnostics come from it.
  expect(tail(fd)).toContain('caps: the flood is over');
});

it('writes a bounded number of lines to supervisor.log for a flood of denied packets', () => {
  // Each connection attempt from a new port is a new denial; 192.0.2.1 (TEST-NET-1) is denied by
  // the policy inside the gateway, so nothing ever leaves this machine.
  const flood = exec(
    'n=0; end=$(( $(date +%s) + 20 )); while [ $(date +%s) -lt $end ]; do nc -w 1 192.0.2.1 80 </dev/null >/dev/null 2>&1; n=$((n+1)); done; echo $n',
  );
  expect(flood.status).toBe(0);
  const attempts = Number(flood.stdout.trim());
  const log = fs.readFileSync(path.join(machineDir(), 'supervisor.log'), 'utf8');
  const denials = log.split('\n').filter((l) => l.includes('network: denied tcp 192.0.2.1:80'));
  // The flood really was one: far more attempts than the log may show in the time it took.
  expect(attempts).toBeGreaterThan(100);
  // 20 lines a minute: the flood spans at most two windows.
  expect(denials.length).toBeLessThanOrEqual(40);
  expect(denials.length).toBeGreaterThan(0);
});
