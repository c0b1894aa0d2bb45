// `smolvm pack create` and the packed executable, end to end: real VMs (TCG here), the built CLI
// and stub, an image from the local registry fixture, then smolvm's image store removed so the
// pack alone runs. The stub is the node-script form (`node my-app`, or `./my-app` via PATH).
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { BUSYBOX, buildImage, buildLayer, busyboxRootfs } from '../../../tools/fixtures/images';
import { FOOTER_SIZE, PackFile } from '@smolvm/pack';
import { e2eSetup, smolvm, startPty, type CliResult, type E2eSetup } from './helpers';

jest.setTimeout(300_000);

let setup: E2eSetup;
let env: NodeJS.ProcessEnv;
let dir: string;
let app: string;

/** A busybox image without an entrypoint: the packed command is the image's CMD. */
function plainImage() {
  return buildImage(
    [buildLayer([...busyboxRootfs(BUSYBOX), { path: 'etc/packed', type: 'file', content: 'from the image\n' }])],
    {
      Cmd: ['/bin/sh', '-c', 'echo packed-default'],
      Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'FROM_IMAGE=yes'],
    },
  );
}

/** Runs the packed executable the way a user does, through Node (node-script stub). */
function stub(exe: string, args: string[], input?: string, timeoutMs = 240_000): CliResult {
  const r = spawnSync(exe, args, { env: { ...process.env, ...env }, input, encoding: 'utf8', timeout: timeoutMs });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function stubAsync(exe: string, args: string[]): Promise<CliResult> {
  const child = spawn(exe, args, { env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr })));
}

beforeAll(async () => {
  setup = await e2eSetup('smolvm-pack-e2e-', { 'smolvm-test/plain:1': plainImage() });
  // The pack carries its own kernel: a stub that looked for the host's would fail on this path.
  env = { ...setup.env, SMOLVM_KERNEL: '/nonexistent/vmlinux' };
  dir = path.join(setup.home, 'out');
  fs.mkdirSync(dir);
  app = path.join(dir, 'my-app');
  const smolfile = path.join(dir, 'Smolfile');
  fs.writeFileSync(
    smolfile,
    `image = "${setup.refs['smolvm-test/plain:1']}"\nenv = ["GREETING=hi"]\n[artifact]\ncpus = 1\nmemory = 256\n`,
  );
  const created = smolvm(['pack', 'create', '-s', smolfile, '-o', app], { ...setup.env }, undefined, 240_000);
  expect(created.stderr).toMatch(/packed .*plain:1: .*my-app.smolmachine/);
  expect(created.status).toBe(0);
  // Nothing of the image is left in smolvm's store: the pack alone must do.
  expect(smolvm(['image', 'rm', '-I', setup.refs['smolvm-test/plain:1']], setup.env).status).toBe(0);
  expect(JSON.parse(smolvm(['image', 'ls', '--json'], setup.env).stdout)).toEqual([]);
});

afterAll(async () => {
  await setup.close();
});

afterEach(() => {
  expect(setup.qemus()).toEqual([]);
});

test('the manifest records the image, the Smolfile profile and the reference defaults it overrides', () => {
  const inspect = smolvm(['pack', 'inspect', `${app}.smolmachine`, '--json'], setup.env);
  expect(inspect.status).toBe(0);
  const m = JSON.parse(inspect.stdout) as Record<string, unknown>;
  expect(m).toMatchObject({
    platform: 'linux/amd64',
    host_platform: 'linux/amd64',
    cpus: 1,
    memory_mib: 256,
    artifact: { cpus: 1, memory_mib: 256 },
    cmd: ['/bin/sh', '-c', 'echo packed-default'],
  });
  expect(m.env).toEqual(['PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'FROM_IMAGE=yes', 'GREETING=hi']);
  expect((m.image as { reference: string }).reference).toBe(setup.refs['smolvm-test/plain:1']);
  expect((m.sections as Array<{ name: string }>).map((s) => s.name)).toEqual(['kernel', 'agent', 'rootfs']);
  expect(typeof m.created === 'string' && !Number.isNaN(Date.parse(m.created))).toBe(true);
});

test('run: the default command, then a command with its output, stderr and exit code', () => {
  const byDefault = stub(app, []);
  expect(byDefault.stdout).toBe('packed-default\n');
  expect(byDefault.status).toBe(0);
  const r = stub(app, [
    'run',
    '--',
    'sh',
    '-c',
    'cat /etc/packed; echo "$GREETING $FROM_IMAGE"; grep -c ^processor /proc/cpuinfo; echo oops >&2; exit 7',
  ]);
  expect(r.stdout).toBe('from the image\nhi yes\n1\n');
  expect(r.stderr).toBe('oops\n');
  expect(r.status).toBe(7);
  const piped = stub(app, ['run', '-i', '--', 'tr', 'a-z', 'A-Z'], 'piped in\n');
  expect(piped.stdout).toBe('PIPED IN\n');
});

// The guest runs on the executable's own Node, attached as a disk: a guest (root in it) must not be able to write it.
test('the packed executable is a read-only disk in the guest: a write to it fails and the file is unchanged', () => {
  const before = crypto.createHash('sha256').update(fs.readFileSync(app)).digest('hex');
  const r = stub(app, [
    'run',
    '--',
    'sh',
    '-c',
    [
      'for b in /sys/block/vd*; do [ "$(cat $b/serial)" = smolvm-runtime ] && d=${b##*/}; done',
      '[ -n "$d" ] || exit 3',
      'echo "ro=$(cat /sys/block/$d/ro)"',
      '[ -e /dev/$d ] || mknod /dev/$d b $(tr : " " < /sys/block/$d/dev)',
      'if dd if=/dev/zero of=/dev/$d bs=4096 count=1 conv=notrunc,fsync 2>/dev/null; then echo wrote; else echo refused; fi',
    ].join('; '),
  ]);
  expect(r.stdout).toBe('ro=1\nrefused\n');
  expect(r.status).toBe(0);
  expect(crypto.createHash('sha256').update(fs.readFileSync(app)).digest('hex')).toBe(before);
});

test('-it: a shell on a pseudo-terminal', async () => {
  const pty = startPty(`${app} run -it -- /bin/sh`, env, 200_000);
  try {
    await pty.waitFor(/\/ # /);
    pty.type('tty; echo "rows=$(stty size)"\r');
    await pty.waitFor(/rows=\d+ \d+/);
    expect(pty.output).toMatch(/\/dev\/pts\/\d+/);
    pty.type('exit 5\r');
    expect(await pty.exited).toBe(5);
  } finally {
    pty.kill();
  }
});

test('a packed run is restored from the boot snapshot of its shape (warm start)', () => {
  // Earlier runs saved the shape's snapshot; --debug notes every start that was not a restore.
  const r = stub(app, ['run', '--debug', '--', 'true']);
  expect(r.stderr).not.toMatch(/cold boot|note:/);
  expect(r.status).toBe(0);
});

test('two runs of one pack at once, and a stub killed with SIGKILL leaves no QEMU', async () => {
  const [a, b] = await Promise.all([
    stubAsync(app, ['run', '--', 'echo', 'A']),
    stubAsync(app, ['run', '--', 'echo', 'B']),
  ]);
  expect([a.stdout, b.stdout, a.status, b.status]).toEqual(['A\n', 'B\n', 0, 0]);

  const child = spawn(app, ['run', '--', 'sh', '-c', 'echo started; sleep 1000'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the packed VM never started')), 200_000);
      child.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('started')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    expect(setup.qemus()).toHaveLength(1);
  } finally {
    child.kill('SIGKILL');
  }
  await new Promise((r) => child.on('exit', r));
  const end = Date.now() + 10_000;
  while (setup.qemus().length > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
});

test('--single-file: one executable, run directly, runs the same', () => {
  const one = path.join(dir, 'one');
  const created = smolvm(
    [
      'pack',
      'create',
      '--image',
      `${setup.refs['smolvm-test/plain:1']}`,
      '--cpus',
      '1',
      '--memory',
      '256',
      '-o',
      one,
      '--single-file',
      '--quiet',
    ],
    setup.env,
    undefined,
    240_000,
  );
  expect(created.status).toBe(0);
  expect(fs.existsSync(`${one}.smolmachine`)).toBe(false);
  expect(fs.statSync(one).mode & 0o111).toBe(0o111);
  const pack = PackFile.open(one);
  expect(pack.payloadStart % 4096).toBe(0);
  // Executed directly: its first lines hand it to the node on PATH.
  const r = spawnSync(one, ['run', '--', 'cat', '/etc/packed'], {
    env: { ...process.env, ...env, PATH: `${path.dirname(process.execPath)}:/usr/bin:/bin` },
    encoding: 'utf8',
    timeout: 240_000,
  });
  expect(r.stdout).toBe('from the image\n');
  expect(r.status).toBe(0);
});

describe('a damaged or foreign payload is refused with one line, and nothing runs', () => {
  const broken = (name: string, change: (bytes: Buffer) => Buffer): string => {
    const exe = path.join(dir, name);
    fs.copyFileSync(app, exe);
    fs.writeFileSync(`${exe}.smolmachine`, change(fs.readFileSync(`${app}.smolmachine`)));
    return exe;
  };
  const refused = (exe: string, message: RegExp) => {
    const r = stub(exe, ['run', '--', 'echo', 'ran']);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
    expect(r.status).toBe(1);
  };

  test.each(['kernel', 'agent', 'rootfs'])('a flipped byte in the %s section', (name) => {
    const section = PackFile.open(`${app}.smolmachine`).section(name as 'kernel')!;
    const exe = broken(`flip-${name}`, (b) => {
      const copy = Buffer.from(b);
      copy[section.offset + Math.floor(section.size / 2)] ^= 0x40;
      return copy;
    });
    refused(exe, new RegExp(`not a usable .smolmachine: its ${name} section does not match its sha256`));
  });

  test('truncated, wrong magic, wrong version', () => {
    refused(
      broken('cut', (b) => b.subarray(0, b.length - 4096)),
      /not a usable .smolmachine: it does not end with the SMOLMACH magic/,
    );
    refused(
      broken('magic', (b) => Buffer.concat([b.subarray(0, b.length - 8), Buffer.from('ELFMAGIC')])),
      /does not end with the SMOLMACH magic/,
    );
    refused(
      broken('version', (b) => {
        const copy = Buffer.from(b);
        copy.writeUInt32LE(9, copy.length - FOOTER_SIZE);
        return copy;
      }),
      /it is format version 9, and this smolvm reads versions 1, 2, 3 and 4/,
    );
  });

  test('a kernel compressed in a way this smolvm does not know (a newer pack)', () => {
    const exe = broken('zstd', (b) => {
      // Same lengths, so the layout holds: only the manifest (and so its digest in the footer) changes.
      const footer = b.length - FOOTER_SIZE;
      const at = footer - Number(b.readBigUInt64LE(footer + 16));
      const text = b.subarray(at, footer).toString('utf8');
      expect(text).toContain('"compression": "gzip"');
      const manifest = Buffer.from(
        text.replace('"compression": "gzip"', '"compression": "zstd"').replace('+gzip', '+zstd'),
      );
      const copy = Buffer.from(b);
      manifest.copy(copy, at);
      crypto
        .createHash('sha256')
        .update(manifest)
        .digest()
        .copy(copy, footer + 32);
      return copy;
    });
    refused(
      exe,
      /its manifest stores section kernel compressed with "zstd", which this smolvm cannot decompress \(made by a newer smolvm\?\)/,
    );
  });
});
