// A hostile guest against --ssh-agent, end to end: root in a bare VM runs the host's own ssh-add
// and ssh-keygen and a node script (the host's node; all three from a volume) against the
// forwarded agent. It may list the host key and sign with it; it may not delete, add, lock or
// unlock keys, and it gets only a bounded number of agent connections at once.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { e2eSetup, smolvmAsync, type E2eSetup } from '../helpers';

jest.setTimeout(300_000);

let setup: E2eSetup;
let sshDir: string;
let hostSock: string;
let agentPid: number | undefined;
let fingerprint: string;

/** ssh-add against the host's agent directly, as the host user. */
function hostAdd(...args: string[]): { status: number | null; stdout: string } {
  const r = spawnSync('ssh-add', args, {
    env: {
      PATH: process.env.PATH,
      SSH_AUTH_SOCK: hostSock,
      SSH_ASKPASS: path.join(sshDir, 'askpass'),
      SSH_ASKPASS_REQUIRE: 'force',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
  });
  return { status: r.status, stdout: r.stdout };
}

/** `script` for /bin/sh -c in a guest with the tools under /ssh. */
function withTools(script: string): string {
  return [
    // The host's binaries through their own loader and libraries (the bare guest, on the busybox base, has no glibc).
    'run() { tool=$1; shift; /ssh/bin/ld-linux-x86-64.so.2 --library-path /ssh/bin /ssh/bin/$tool "$@" </dev/null; }',
    'export SSH_ASKPASS=/ssh/askpass SSH_ASKPASS_REQUIRE=force',
    script,
  ].join('\n');
}

const VM = ['--cpus', '1', '--memory', '256', '--ssh-agent', '-v'];

function cli(args: string[]) {
  return smolvmAsync(args, { ...setup.env, SSH_AUTH_SOCK: hostSock });
}

/** Runs `script` in a bare VM with --ssh-agent and the tools under /ssh. */
function guest(script: string) {
  return cli(['machine', 'run', ...VM, `${sshDir}:/ssh`, '--', '/bin/sh', '-c', withTools(script)]);
}

const ATTACKS = [
  'for args in "-D" "-d /ssh/pub/key.pub" "/ssh/other" "-x"; do run ssh-add $args >/dev/null 2>&1; echo "ssh-add $args: $?"; done',
  'run ssh-add -l',
  // sync: the volume caches writes (cache=loose), and a persistent machine is still running when the
  // host reads the signature.
  'rm -f /ssh/data.sig; run ssh-keygen -Y sign -f /ssh/pub/key.pub -n file /ssh/data >/dev/null 2>&1; echo "sign: $?"; sync',
  'run node /ssh/conns.js',
].join('\n');

/** What ATTACKS prints when only listing and signing get through, on 8 connections at most. */
function refused(): string[] {
  return [
    'ssh-add -D: 1',
    'ssh-add -d /ssh/pub/key.pub: 1',
    'ssh-add /ssh/other: 1',
    'ssh-add -x: 1',
    fingerprint.trimEnd(),
    'sign: 0',
    `conns: ${[...Array(8).fill('answer'), ...Array(4).fill('closed')].join(' ')}`,
    '',
  ];
}

/** The host agent still holds exactly its key, unlocked, and the guest's signature is good. */
function expectHostAgentIntact(): void {
  expect(hostAdd('-l').stdout).toBe(fingerprint);
  const check = spawnSync('ssh-keygen', ['-Y', 'check-novalidate', '-n', 'file', '-s', path.join(sshDir, 'data.sig')], {
    input: 'signed in the guest\n',
    encoding: 'utf8',
  });
  expect(check.stdout).toMatch(/^Good "file" signature/);
}

beforeAll(async () => {
  setup = await e2eSetup('smolvm-sshagent-e2e-');
  sshDir = path.join(setup.home, 'ssh');
  hostSock = path.join(setup.home, 'agent.sock');
  fs.mkdirSync(path.join(sshDir, 'bin'), { recursive: true });
  fs.mkdirSync(path.join(sshDir, 'pub'));
  const agent = spawnSync('ssh-agent', ['-a', hostSock], { encoding: 'utf8' });
  if (agent.status !== 0) throw new Error(`ssh-agent: ${agent.stderr}`);
  agentPid = Number(/SSH_AGENT_PID=(\d+)/.exec(agent.stdout)?.[1]);
  // The host key stays on the host; the guest gets its public half (to name it) and a key of its own to try adding.
  const keyDir = path.join(setup.home, 'hostkey');
  fs.mkdirSync(keyDir);
  spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'host', '-f', path.join(keyDir, 'key')]);
  spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'guest', '-f', path.join(sshDir, 'other')]);
  fs.copyFileSync(path.join(keyDir, 'key.pub'), path.join(sshDir, 'pub', 'key.pub'));
  fs.writeFileSync(path.join(sshDir, 'askpass'), '#!/bin/sh\necho passphrase\n', { mode: 0o755 });
  fs.writeFileSync(path.join(sshDir, 'data'), 'signed in the guest\n');
  // Holds 12 agent connections open, one after another, each asking for the key list once.
  fs.writeFileSync(
    path.join(sshDir, 'conns.js'),
    `const net = require('net');
const ask = () => new Promise((resolve) => {
  const s = net.connect(process.env.SSH_AUTH_SOCK, () => s.write(Buffer.from([0, 0, 0, 1, 11])));
  const done = (v) => resolve({ s, v });
  s.once('data', (d) => done(d[4] === 12 ? 'answer' : 'type' + d[4]));
  s.once('end', () => done('closed'));
  s.once('error', () => done('closed'));
});
(async () => {
  const held = [];
  for (let i = 0; i < 12; i++) held.push(await ask());
  console.log('conns: ' + held.map((h) => h.v).join(' '));
  for (const h of held) h.s.destroy();
})();
`,
  );
  const libs =
    spawnSync('ldd', ['/usr/bin/ssh-add', '/usr/bin/ssh-keygen', process.execPath], { encoding: 'utf8' }).stdout.match(
      /\/\S+/g,
    ) ?? [];
  for (const file of ['/usr/bin/ssh-add', '/usr/bin/ssh-keygen', process.execPath, ...libs]) {
    if (file.endsWith(':')) continue;
    fs.copyFileSync(fs.realpathSync(file), path.join(sshDir, 'bin', path.basename(file)));
  }
  if (hostAdd(path.join(keyDir, 'key')).status !== 0) throw new Error('ssh-add of the host key failed');
  fingerprint = spawnSync('ssh-keygen', ['-l', '-f', path.join(keyDir, 'key.pub')], { encoding: 'utf8' }).stdout;
});

afterAll(async () => {
  if (agentPid) process.kill(agentPid);
  await setup?.close();
});

afterEach(() => {
  expect(setup.qemus()).toEqual([]);
  // The next attack starts from the same host agent: one key, unlocked (whatever got through).
  hostAdd('-X');
  hostAdd('-D');
  hostAdd(path.join(setup.home, 'hostkey', 'key'));
});

test('root in the guest cannot delete, add or lock keys; listing, signing and 8 connections at once still work', async () => {
  const r = await guest(ATTACKS);
  expect(r.stderr).toBe('');
  expect(r.stdout.split('\n')).toEqual(refused());
  expect(r.status).toBe(0);
  expectHostAgentIntact();
});

test('root in the guest cannot unlock an agent the host user locked', async () => {
  expect(hostAdd('-x').status).toBe(0);
  const r = await cli([
    'machine',
    'run',
    '--debug',
    ...VM,
    `${sshDir}:/ssh`,
    '--',
    '/bin/sh',
    '-c',
    withTools('run ssh-add -X >/dev/null 2>&1; echo "ssh-add -X: $?"'),
  ]);
  expect(r.stdout).toBe('ssh-add -X: 1\n');
  expect(r.stderr).toContain('smolvm: ssh-agent: refused unlock (23) from the guest\n');
  expect(r.status).toBe(0);
  // Locked still (a locked agent lists nothing), until the host user unlocks it.
  expect(hostAdd('-l').stdout).toBe('The agent has no identities.\n');
  expect(hostAdd('-X').status).toBe(0);
  expect(hostAdd('-l').stdout).toBe(fingerprint);
});

test('a persistent machine relays through the same filter (its supervisor holds the relay)', async () => {
  try {
    expect(
      (await cli(['machine', 'create', 'agentkeep', ...VM, `${sshDir}:/ssh`, '--storage', '1', '--overlay', '1']))
        .status,
    ).toBe(0);
    expect((await cli(['machine', 'start', '--name', 'agentkeep'])).status).toBe(0);
    const r = await cli(['machine', 'exec', '--name', 'agentkeep', '--', '/bin/sh', '-c', withTools(ATTACKS)]);
    expect(r.stdout.split('\n')).toEqual(refused());
    expect(r.status).toBe(0);
    expectHostAgentIntact();
    const logs = fs
      .readdirSync(setup.home, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('supervisor.log'));
    expect(logs).toHaveLength(1);
    const log = fs.readFileSync(path.join(setup.home, logs[0]), 'utf8');
    for (const request of ['remove all identities (19)', 'add identity (17)', 'lock (22)'])
      expect(log).toContain(`ssh-agent: refused ${request} from the guest`);
  } finally {
    await cli(['machine', 'delete', 'agentkeep', '-f']);
  }
});
