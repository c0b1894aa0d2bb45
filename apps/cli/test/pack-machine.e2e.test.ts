// Packs as persistent machines, end to end (real VMs): the packed executable's start/exec/stop
// (/workspace kept, the rest of the root reset per exec),
// `machine create --from` keeping what exec wrote across stop/start, and `pack create --from-vm`
// carrying a machine's files into a new pack.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BUSYBOX, buildImage, buildLayer, busyboxRootfs } from '../../../tools/fixtures/images';
import { e2eSetup, smolvm, startPty, shellWords, type CliResult, type E2eSetup } from './helpers';

jest.setTimeout(400_000);

let setup: E2eSetup;
let env: NodeJS.ProcessEnv;
let dir: string;
let app: string;

function stub(exe: string, args: string[], timeoutMs = 300_000): CliResult {
  const r = spawnSync(exe, args, { env: { ...process.env, ...env }, encoding: 'utf8', timeout: timeoutMs });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const cli = (args: string[], timeoutMs = 300_000) => smolvm(args, env, undefined, timeoutMs);

beforeAll(async () => {
  setup = await e2eSetup('smolvm-pack-machine-e2e-', {
    'smolvm-test/plain:1': buildImage([buildLayer(busyboxRootfs(BUSYBOX))], {
      Cmd: ['/bin/sh'],
      Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'],
    }),
  });
  env = setup.env;
  dir = path.join(setup.home, 'out');
  fs.mkdirSync(dir);
  app = path.join(dir, 'my-app');
  expect(
    cli([
      'pack',
      'create',
      '--image',
      setup.refs['smolvm-test/plain:1'],
      '--cpus',
      '1',
      '--memory',
      '256',
      '-o',
      app,
      '--quiet',
    ]).status,
  ).toBe(0);
  expect(cli(['image', 'rm', '-I', setup.refs['smolvm-test/plain:1']]).status).toBe(0);
});

afterAll(async () => {
  for (const name of ['from-pack', 'from-pack-again', 'pack-src']) cli(['machine', 'delete', name, '-f']);
  stub(app, ['stop']);
  expect(setup.qemus()).toEqual([]);
  await setup.close();
});

test('the packed executable: start, exec (exit codes, /workspace kept, the rest reset per exec), status, stop', async () => {
  expect(stub(app, ['status']).stdout).toBe('not created\n');
  const started = stub(app, ['start']);
  expect(started.stderr).toMatch(/started \(machine pack-[0-9a-f]{12}\)/);
  expect(started.status).toBe(0);
  expect(stub(app, ['status']).stdout).toBe('running\n');
  expect(stub(app, ['start']).stderr).toMatch(/already running/);
  const wrote = stub(app, ['exec', '--', 'sh', '-c', 'echo kept > /workspace/w; echo to-stderr >&2; exit 4']);
  expect([wrote.stderr, wrote.status]).toEqual(['to-stderr\n', 4]);
  expect(stub(app, ['exec', '--', 'cat', '/workspace/w']).stdout).toBe('kept\n');
  // The reference's daemon mode: the container overlay resets per exec, /workspace is kept.
  const install = stub(app, [
    'exec',
    '--',
    'sh',
    '-c',
    'echo tool > /usr/bin/installed; echo t > /tmp/t; cat /usr/bin/installed; echo more >> /workspace/w',
  ]);
  expect([install.stdout, install.status]).toEqual(['tool\n', 0]);
  const after = stub(app, [
    'exec',
    '--',
    'sh',
    '-c',
    'ls /usr/bin/installed /tmp/t 2>&1; ls -A /tmp; cat /workspace/w',
  ]);
  expect(after.stdout).toMatch(
    /^ls: \/usr\/bin\/installed: No such file or directory\nls: \/tmp\/t: No such file or directory\nkept\nmore\n$/,
  );
  // A terminal works in an exec's own root too.
  const pty = startPty(
    shellWords([
      app,
      'exec',
      '-it',
      '--',
      'sh',
      '-c',
      'echo "on $(tty)" > /etc/pty-was-here; cat /etc/pty-was-here; exit 3',
    ]),
    env,
  );
  try {
    expect(await pty.exited).toBe(3);
    expect(pty.output).toMatch(/on \/dev\/pts\/\d+/);
  } finally {
    pty.kill();
  }
  expect(stub(app, ['exec', '--', 'cat', '/etc/pty-was-here']).status).toBe(1);
  const ls = JSON.parse(cli(['machine', 'ls', '--json']).stdout) as Array<{ name: string; state: string }>;
  expect(ls.find((m) => m.name.startsWith('pack-'))?.state).toBe('running');
  expect(stub(app, ['stop']).status).toBe(0);
  const status = JSON.parse(stub(app, ['status', '--json']).stdout) as { state: string };
  expect(status.state).toBe('stopped');
  expect(stub(app, ['start']).status).toBe(0);
  expect(stub(app, ['exec', '--', 'cat', '/workspace/w']).stdout).toBe('kept\nmore\n');
  expect(stub(app, ['stop']).status).toBe(0);
  const notRunning = stub(app, ['exec', '--', 'true']);
  expect(notRunning.stderr).toMatch(/is not started \(stopped\).*start it with/);
  expect(notRunning.status).toBe(1);
});

test('machine create --from: boots the payload, keeps installs and /workspace across stop/start', () => {
  const created = cli(['machine', 'create', 'from-pack', '--from', `${app}.smolmachine`, '--quiet']);
  expect(created.status).toBe(0);
  // Its first start's invocation, kept at creation (no image erofs: the pack's own sections).
  const kept = path.join(setup.home, 'data/machines/from-pack/start.json');
  expect(JSON.parse(fs.readFileSync(kept, 'utf8'))).toMatchObject({ v: 1, imageErofs: null });
  const first = cli(['machine', 'start', '--name', 'from-pack', '--debug']);
  expect(first.status).toBe(0);
  expect(first.stderr).not.toContain('spawned early was not used');
  // The pack carries the agent's startup blob, built on this host's guest CPU: the agent runs from
  // it (node refuses a blob of another CPU, and /init then starts the bundle without it).
  const sh = (script: string) => cli(['machine', 'exec', '--name', 'from-pack', '--', 'sh', '-c', script]);
  expect(sh('cat /proc/[0-9]*/cmdline | tr "\\0" " "').stdout).toMatch(/\/node .*--snapshot-blob \S*agent\.blob/);
  expect(sh('echo installed > /usr/bin/my-tool; echo data > /workspace/d').status).toBe(0);
  expect(cli(['machine', 'stop', '--name', 'from-pack']).status).toBe(0);
  expect(cli(['machine', 'start', '--name', 'from-pack', '--quiet']).status).toBe(0);
  const r = cli(['machine', 'exec', '--name', 'from-pack', '--', 'cat', '/usr/bin/my-tool', '/workspace/d']);
  expect(r.stdout).toBe('installed\ndata\n');
  const images = JSON.parse(cli(['machine', 'images', '--json']).stdout) as Array<{ name: string; image?: string }>;
  expect(images.find((m) => m.name === 'from-pack')?.image).toBe(setup.refs['smolvm-test/plain:1']);
  expect(cli(['machine', 'stop', '--name', 'from-pack']).status).toBe(0);
  // The image store was never used: the machine booted the pack's own sections.
  expect(JSON.parse(cli(['image', 'ls', '--json']).stdout)).toEqual([]);
});

test('a pack imported again into an emptied section cache starts from the same boot snapshot (kernel keyed by content)', () => {
  // from-pack's starts saved the snapshot of this shape. The kernel copied again is a new file with the same bytes.
  fs.rmSync(path.join(setup.home, 'cache', 'pack'), { recursive: true, force: true });
  expect(cli(['machine', 'create', 'from-pack-again', '--from', `${app}.smolmachine`, '--quiet']).status).toBe(0);
  expect(cli(['machine', 'start', '--name', 'from-pack-again', '--quiet']).status).toBe(0);
  const log = fs.readFileSync(path.join(setup.home, 'data/machines/from-pack-again/supervisor.log'), 'utf8');
  expect(log).toMatch(/ready after .*restored from a boot snapshot/);
  expect(log).not.toMatch(/cold boot to save one/);
  expect(cli(['machine', 'exec', '--name', 'from-pack-again', '--', 'true']).status).toBe(0);
  expect(cli(['machine', 'delete', 'from-pack-again', '-f']).status).toBe(0);
});

test('pack create --from-vm carries what the machine wrote into a new pack', () => {
  // from-pack was made from a pack: packing it again is refused; pack a machine made from the image.
  expect(cli(['pack', 'create', '--from-vm', 'from-pack', '-o', path.join(dir, 'x')]).stderr).toMatch(
    /made from a pack/,
  );
  expect(
    cli([
      'machine',
      'create',
      'pack-src',
      '--image',
      setup.refs['smolvm-test/plain:1'],
      '--cpus',
      '1',
      '--memory',
      '256',
      '--quiet',
    ]).status,
  ).toBe(0);
  expect(cli(['machine', 'start', '--name', 'pack-src', '--quiet']).status).toBe(0);
  expect(cli(['pack', 'create', '--from-vm', 'pack-src', '-o', path.join(dir, 'x')]).stderr).toMatch(
    /is running.*stop it first/,
  );
  expect(
    cli([
      'machine',
      'exec',
      '--name',
      'pack-src',
      '--',
      'sh',
      '-c',
      'echo in-root > /etc/carried; echo in-workspace > /workspace/carried',
    ]).status,
  ).toBe(0);
  expect(cli(['machine', 'stop', '--name', 'pack-src']).status).toBe(0);
  const fromVm = path.join(dir, 'from-vm');
  const packed = cli(['pack', 'create', '--from-vm', 'pack-src', '-o', fromVm]);
  expect(packed.stderr).toMatch(/overlay .* storage /);
  expect(packed.status).toBe(0);
  const r = stub(fromVm, ['run', '--', 'cat', '/etc/carried', '/workspace/carried']);
  expect(r.stdout).toBe('in-root\nin-workspace\n');
  expect(r.status).toBe(0);
});
