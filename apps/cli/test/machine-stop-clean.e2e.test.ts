// `machine stop` leaves a machine's disks clean, as an unmount would: the guest freezes them before
// it powers off, so the next start mounts them without replaying a journal (that replay was a
// good part of a warm start's setup). A process still writing when the machine stops does not
// keep the disks dirty, and what was written before the stop is all there after the next start.
import fs from 'node:fs';
import path from 'node:path';
import { e2eSetup, smolvm, type CliResult, type E2eSetup } from './helpers';

jest.setTimeout(300_000);

let setup: E2eSetup;
let env: NodeJS.ProcessEnv;

function cli(args: string[]): CliResult {
  return smolvm(args, env, undefined, 240_000);
}

function exec(script: string): CliResult {
  return cli(['machine', 'exec', '--name', 'clean', '--', '/bin/sh', '-c', script]);
}

/**
 * ext4's "needs_recovery" (EXT4_FEATURE_INCOMPAT_RECOVER): set while mounted, cleared by a clean unmount or a freeze.
 */
function needsRecovery(disk: string): boolean {
  const superblock = Buffer.alloc(1024);
  const fd = fs.openSync(disk, 'r');
  try {
    fs.readSync(fd, superblock, 0, 1024, 1024);
  } finally {
    fs.closeSync(fd);
  }
  expect(superblock.readUInt16LE(0x38)).toBe(0xef53);
  return (superblock.readUInt32LE(0x60) & 0x4) !== 0;
}

beforeAll(async () => {
  setup = await e2eSetup('smolvm-machine-clean-e2e-');
  ({ env } = setup);
});

afterAll(async () => {
  cli(['machine', 'delete', 'clean', '-f']);
  expect(setup.qemus()).toEqual([]);
  await setup.close();
});

it('a stopped machine has clean disks, even with a writer running at the stop, and keeps what it wrote', () => {
  expect(
    cli(['machine', 'create', 'clean', '--cpus', '1', '--memory', '256', '--storage', '1', '--overlay', '1']).status,
  ).toBe(0);
  expect(cli(['machine', 'start', '--name', 'clean']).status).toBe(0);
  const wrote = exec(
    [
      'echo root > /etc/kept',
      'echo workspace > /workspace/kept',
      'setsid sh -c "while :; do echo x >> /workspace/busy; echo y >> /var/busy; done" </dev/null >/dev/null 2>&1 &',
    ].join('\n'),
  );
  expect(wrote.status).toBe(0);
  // Mounted and written: the journal is live.
  const dir = path.join(setup.home, 'data', 'machines', 'clean');
  expect(needsRecovery(path.join(dir, 'storage.ext4'))).toBe(true);
  expect(cli(['machine', 'stop', '--name', 'clean']).status).toBe(0);
  expect(needsRecovery(path.join(dir, 'overlay.ext4'))).toBe(false);
  expect(needsRecovery(path.join(dir, 'storage.ext4'))).toBe(false);

  expect(cli(['machine', 'start', '--name', 'clean']).status).toBe(0);
  const after = exec(
    'cat /etc/kept /workspace/kept; test -s /workspace/busy && test -s /var/busy && echo busy; dmesg | grep -c "recovery complete"',
  );
  expect(after.stdout).toBe('root\nworkspace\nbusy\n0\n');
  expect(cli(['machine', 'stop', '--name', 'clean']).status).toBe(0);
});
