// Elastic memory end to end: a booted machine's guest touches 1 GiB and frees it, and QEMU's
// resident memory (from /proc) comes back. The bound is generous (the tight figures are in
// tools/bench/memory.ts); without the balloon the memory stays with QEMU until the VM ends.
import fs from 'node:fs';
import path from 'node:path';
import { e2eSetup, smolvm, type CliResult, type E2eSetup } from './helpers';

jest.setTimeout(420_000);

const MIB = 1024 * 1024;
let setup: E2eSetup;

function cli(args: string[]): CliResult {
  return smolvm(args, setup.env, undefined, 240_000);
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return (Number(m[1]) * 1024) / MIB;
}

beforeAll(async () => {
  setup = await e2eSetup('smolvm-memory-e2e-');
});

afterAll(async () => {
  cli(['machine', 'delete', 'elastic', '-f']);
  expect(setup.qemus()).toEqual([]);
  await setup.close();
});

it('memory a guest touched and freed goes back to the host', async () => {
  expect(
    cli(['machine', 'create', 'elastic', '--cpus', '1', '--memory', '1536', '--storage', '1', '--overlay', '1']).status,
  ).toBe(0);
  // Booted: a VM restored from a boot snapshot has its RAM in the snapshot's file and no balloon
  // (README, Memory).
  const started = cli(['machine', 'start', '--name', 'elastic', '--cold']);
  expect(started).toMatchObject({ status: 0 });
  const record = JSON.parse(fs.readFileSync(path.join(setup.home, 'data/machines/elastic/machine.json'), 'utf8')) as {
    runtime: { vm: { pid: number } };
  };
  const qemu = record.runtime.vm.pid;
  const before = rssMiB(qemu);

  const touch = cli([
    'machine',
    'exec',
    '--name',
    'elastic',
    '--',
    'sh',
    '-c',
    'mkdir -p /tmp/t && mount -t tmpfs -o size=1100m tmpfs /tmp/t && dd if=/dev/zero of=/tmp/t/f bs=1M count=1024 2>/dev/null && echo touched',
  ]);
  expect(touch.stdout.trim()).toBe('touched');
  const peak = rssMiB(qemu);
  // The test proves something only if the guest's memory really reached the host.
  expect(peak - before).toBeGreaterThan(700);

  expect(cli(['machine', 'exec', '--name', 'elastic', '--', 'sh', '-c', 'rm /tmp/t/f && umount /tmp/t']).status).toBe(
    0,
  );
  // Free page reporting runs every 2 s in the guest; under TCG and a loaded host, give it 60 s.
  let now = peak;
  for (let waited = 0; waited < 60_000 && now - before > 300; waited += 1000) {
    await new Promise((r) => setTimeout(r, 1000));
    now = rssMiB(qemu);
  }
  const seen = { before: Math.round(before), peak: Math.round(peak), after: Math.round(now) };
  expect({ ...seen, returned: now - before <= 300 }).toEqual({ ...seen, returned: true });
});
