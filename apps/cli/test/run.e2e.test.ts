// `smolvm machine run` end to end: real VMs (KVM where usable, else TCG), the built CLI, a real
// local registry for --image. Slow by nature: every test boots at least one VM.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { featureImage } from '../../../tools/fixtures/images';
import { CLI, e2eSetup, smolvm, startPty, type CliResult, type E2eSetup } from './helpers';

jest.setTimeout(240_000);

// The same tests run cold (this file) and restored from boot snapshots (run-warm.e2e.test.ts,
// which sets SMOLVM_E2E_WARM and loads this file): results must be identical.
const WARM = process.env.SMOLVM_E2E_WARM === '1';
const bootFlags = WARM ? [] : ['--cold'];

let setup: E2eSetup;
let home: string;
let runtimeDir: string;
let env: NodeJS.ProcessEnv;
let imageRef: string;

/** A small VM: 1 vCPU boots fastest under TCG, and tests run side by side. */
function run(args: string[], input?: string, extraEnv: NodeJS.ProcessEnv = {}): CliResult {
  return smolvm(
    ['machine', 'run', ...bootFlags, '--cpus', '1', '--memory', '256', ...args],
    { ...env, ...extraEnv },
    input,
    180_000,
  );
}

const qemuChildren = () => setup.qemus();

beforeAll(async () => {
  setup = await e2eSetup(WARM ? 'smolvm-run-warm-e2e-' : 'smolvm-run-e2e-', {
    'smolvm-test/feature:latest': featureImage(),
  });
  ({ home, runtimeDir, env } = setup);
  imageRef = setup.refs['smolvm-test/feature:latest'];
});

afterAll(async () => {
  await setup.close();
});

afterEach(() => {
  // Every test must leave no VM and no run files behind.
  expect(qemuChildren()).toEqual([]);
  const root = path.join(runtimeDir, 'smolvm');
  const left = fs.existsSync(root) ? fs.readdirSync(root) : [];
  expect(left).toEqual([]);
});

describe('machine run (bare image)', () => {
  it('runs a command and prints its output', () => {
    const r = run(['--', 'echo', 'hello from a micro-VM']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hello from a micro-VM\n');
    expect(r.status).toBe(0);
  });

  it('starts later agents from the V8 snapshot the first run built in a guest', () => {
    const agentDir = path.join(home, 'cache', 'agent');
    expect(fs.readdirSync(agentDir).filter((f) => f.endsWith('.blob'))).toHaveLength(1);
    const timings = path.join(home, 'timings.json');
    expect(run(['--', 'true'], undefined, { SMOLVM_TIMINGS: timings }).status).toBe(0);
    expect(JSON.parse(fs.readFileSync(timings, 'utf8')).agentSnapshot).toBe(true);
    expect(run(['--', 'true'], undefined, { SMOLVM_TIMINGS: timings, SMOLVM_AGENT_SNAPSHOT: '0' }).status).toBe(0);
    expect(JSON.parse(fs.readFileSync(timings, 'utf8')).agentSnapshot).toBe(false);
  });

  it('passes exit codes through: 0, 1, and 137 for a process killed by SIGKILL', () => {
    const r = run(['--', 'sh', '-c', 'true && sh -c "exit 1"; echo code=$?; kill -9 $$']);
    expect(r.stdout).toBe('code=1\n');
    expect(r.status).toBe(137);
    expect(run(['--', 'sh', '-c', 'exit 1']).status).toBe(1);
  });

  it('a command the guest cannot find or run ends like a shell: 127 / 126 and one error line', () => {
    const missing = run(['--', '/no/such/cmd']);
    expect(missing.status).toBe(127);
    expect(missing.stderr).toBe('error: agent exec: /no/such/cmd: no such file or directory\n');
    const notExecutable = run(['--cpus', '2', '--', '/etc/passwd']);
    expect(notExecutable.status).toBe(126);
    expect(notExecutable.stderr).toMatch(/^error: agent exec: \/etc\/passwd: permission denied\n$/);
  });

  it('refuses bad input before booting: a missing volume directory, a bad value given last', () => {
    const volume = run(['-v', `${home}/does-not-exist:/x`, '--', 'true']);
    expect(volume.status).toBe(2);
    expect(volume.stderr).toBe(
      `error: volume host path ${home}/does-not-exist is not a directory; create it, or fix the volume ${home}/does-not-exist:/x\n`,
    );
    const cpus = run(['--cpus', '0', '--', 'true']);
    expect(cpus.status).toBe(2);
    expect(cpus.stderr).toMatch(/^error: invalid CPU count "0": must be between 1 and 64/);
  });

  it('keeps 10 MB of stdout and 10 MB of stderr apart, byte for byte', () => {
    // Distinct, checkable streams: 10 MiB of "o" lines to stdout, of "e" lines to stderr, interleaved.
    const script =
      'i=0; while [ $i -lt 20 ]; do head -c 524288 /dev/zero | tr "\\0" o; head -c 524288 /dev/zero | tr "\\0" e >&2; i=$((i+1)); done';
    const r = run(['--', 'sh', '-c', script]);
    expect(r.status).toBe(0);
    expect(r.stdout.length).toBe(10 * 1024 * 1024);
    expect(r.stderr.length).toBe(10 * 1024 * 1024);
    expect(/^o+$/.test(r.stdout)).toBe(true);
    expect(/^e+$/.test(r.stderr)).toBe(true);
  });

  it('pipes stdin with -i', () => {
    const data = crypto.randomBytes(64 * 1024).toString('hex');
    const r = run(['-i', '--', 'sh', '-c', 'cat | sha256sum'], data);
    expect(r.status).toBe(0);
    expect(r.stdout.split(' ')[0]).toBe(crypto.createHash('sha256').update(data).digest('hex'));
    expect(run(['-i', '--', 'cat'], 'hi\n').stdout).toBe('hi\n');
  });

  it('applies -e, -w and the default shell', () => {
    const r = run(['-e', 'GREETING=hi there', '-w', '/tmp', '--', 'sh', '-c', 'echo "$GREETING in $(pwd)"']);
    expect(r.stdout).toBe('hi there in /tmp\n');
    const shell = run(['-i'], 'echo from the default shell; exit 4\n');
    expect(shell.stdout).toBe('from the default shell\n');
    expect(shell.status).toBe(4);
  });

  it('mounts volumes read-write and enforces :ro', () => {
    const rw = fs.mkdtempSync(path.join(home, 'rw-'));
    const ro = fs.mkdtempSync(path.join(home, 'ro-'));
    fs.writeFileSync(path.join(ro, 'input.txt'), 'from the host\n');
    const r = run([
      '-v',
      `${rw}:/data`,
      '-v',
      `${ro}:/input:ro`,
      '--',
      'sh',
      '-c',
      'cat /input/input.txt > /data/copy.txt && echo written > /data/new.txt; touch /input/nope 2>/dev/null; echo ro=$?',
    ]);
    expect(r.stdout).toBe('ro=1\n');
    expect(r.status).toBe(0);
    expect(fs.readFileSync(path.join(rw, 'copy.txt'), 'utf8')).toBe('from the host\n');
    expect(fs.readFileSync(path.join(rw, 'new.txt'), 'utf8')).toBe('written\n');
    expect(fs.existsSync(path.join(ro, 'nope'))).toBe(false);
  });

  it('runs the workload a Smolfile declares, with flags merged on top', () => {
    const dir = fs.mkdtempSync(path.join(home, 'smolfile-'));
    fs.mkdirSync(path.join(dir, 'src'));
    fs.writeFileSync(path.join(dir, 'src', 'app.sh'), 'echo "app: $MODE $EXTRA $(cat /etc/ready)"\n');
    fs.writeFileSync(
      path.join(dir, 'Smolfile'),
      [
        'cmd = ["sh", "/app/app.sh"]',
        'env = ["MODE=top"]',
        'cpus = 1',
        'memory = 256',
        '[dev]',
        'volumes = ["./src:/app:ro"]',
        'init = ["echo ready > /etc/ready"]',
        'env = ["MODE=dev"]',
      ].join('\n'),
    );
    const r = smolvm(
      ['machine', 'run', ...bootFlags, '-s', path.join(dir, 'Smolfile'), '-e', 'EXTRA=cli'],
      env,
      undefined,
      180_000,
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('app: dev cli ready\n');
    expect(r.status).toBe(0);
  });

  it('honours a Smolfile that asks for networking and SSH agent forwarding: no host agent fails before booting', () => {
    const file = path.join(home, 'Smolfile.net');
    fs.writeFileSync(file, 'net = true\n[auth]\nssh_agent = true\n');
    const r = smolvm(['machine', 'run', '-s', file], { ...env, SSH_AUTH_SOCK: '' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^error: --ssh-agent needs an SSH agent on the host, and SSH_AUTH_SOCK is not set; /);
  });
});

describe('machine run --image', () => {
  it('uses the image entrypoint, cmd, env, workdir and user; trailing args replace cmd', () => {
    const r = run(['--image', imageRef]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hello, world\n');
    expect(r.status).toBe(0);
    expect(run(['-I', imageRef, '--', 'smolvm']).stdout).toBe('hello, smolvm\n');
  });

  it('runs in the image root as the image user, with the image layers applied', () => {
    // Override the entrypoint through a Smolfile to inspect the root from inside.
    const file = path.join(home, 'Smolfile.inspect');
    fs.writeFileSync(
      file,
      `image = "${imageRef}"\nentrypoint = ["/bin/sh", "-c"]\ncmd = ["id -u; pwd; cat /etc/motd; ls /etc/removed-later 2>&1 | grep -c 'No such'; ls /var/cache; echo tmp > /tmp/x && cat /tmp/x"]\n`,
    );
    const inspect = smolvm(
      ['machine', 'run', ...bootFlags, '--cpus', '1', '--memory', '256', '-s', file],
      env,
      undefined,
      180_000,
    );
    expect(inspect.stdout).toBe('1000\n/app\nsmolvm test image\n1\nfresh\ntmp\n');
    expect(inspect.status).toBe(0);
  });
});

describe('terminal and cleanup', () => {
  it('drives a shell on a pseudo-terminal: typed commands run and Ctrl-C interrupts', async () => {
    // `script` gives smolvm a real terminal; the test types into it like a user.
    const cmd = `${process.execPath} ${CLI} machine run ${bootFlags.join(' ')} --cpus 1 --memory 256 -it`;
    const pty = startPty(cmd, env, 150_000);
    try {
      // busybox ash's prompt, possibly followed by its cursor-position query (ESC [ 6 n).
      await pty.waitFor(/\/ # /);
      pty.type('tty; echo "cols=$(stty size)"\r');
      await pty.waitFor(/cols=\d+ \d+/);
      expect(pty.output).toMatch(/\/dev\/pts\/\d+/);
      pty.type('sleep 1000\r');
      await new Promise((r) => setTimeout(r, 1500));
      pty.type('\x03');
      pty.type('echo after-sleep=$?\r');
      await pty.waitFor(/after-sleep=130/);
      pty.type('exit 7\r');
      expect(await pty.exited).toBe(7);
    } finally {
      pty.kill();
    }
  });

  it('leaves no VM and no files when the CLI is SIGKILLed mid-run', async () => {
    const child = spawn(
      process.execPath,
      [
        CLI,
        'machine',
        'run',
        ...bootFlags,
        '--cpus',
        '1',
        '--memory',
        '256',
        '--',
        'sh',
        '-c',
        'echo started; sleep 1000',
      ],
      {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the VM never started')), 180_000);
        child.stdout.on('data', (d: Buffer) => {
          if (d.toString().includes('started')) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      expect(qemuChildren()).toHaveLength(1);
    } finally {
      child.kill('SIGKILL');
    }
    await new Promise((r) => child.on('exit', r));
    const end = Date.now() + 5000;
    while (qemuChildren().length > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    // afterEach checks: no QEMU, no run directory.
  });
});
