// Bare VMs on the Debian base tools/setup builds (issue 16 item 1): apt installs from a local
// repository persist in a bare machine across stop/start, as does a tool in /usr/local/bin; a bare
// shell on a pty; without any base, one line saying how to get one.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startAptRepo, type AptRepoFixture } from '../../../tools/fixtures/apt-repo';
import { CLI, e2eSetup, smolvm, smolvmAsync, startPty, type CliResult, type E2eSetup } from './helpers';

jest.setTimeout(600_000);

let setup: E2eSetup;
let env: NodeJS.ProcessEnv;
let apt: AptRepoFixture;

function cli(args: string[], extraEnv: NodeJS.ProcessEnv = {}): CliResult {
  return smolvm(args, { ...env, ...extraEnv }, undefined, 300_000);
}

function exec(name: string, script: string): CliResult {
  return cli(['machine', 'exec', '--name', name, '--', '/bin/sh', '-c', script]);
}

beforeAll(async () => {
  setup = await e2eSetup('smolvm-base-e2e-', {}, { base: 'debian' });
  env = setup.env;
  apt = await startAptRepo();
});

afterAll(async () => {
  cli(['machine', 'delete', 'dev', '-f']);
  await apt?.stop();
  expect(setup.qemus()).toEqual([]);
  await setup.close();
});

describe('without a base', () => {
  let empty: string;
  beforeAll(() => {
    empty = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-nobase-'));
  });
  afterAll(() => fs.rmSync(empty, { recursive: true, force: true }));

  it('a bare run or create fails with one line saying how to get a base, and creates nothing', () => {
    // Another user's home: no set-up ran there, so no base was built (and no busybox fallback).
    const noBase = {
      SMOLVM_HOME: path.join(empty, 'home'),
      HOME: empty,
      XDG_CACHE_HOME: path.join(empty, 'cache'),
      SMOLVM_KERNEL: '/nonexistent',
    };
    for (const args of [
      ['machine', 'run', '--', 'true'],
      ['machine', 'create', 'x'],
    ]) {
      const r = cli(args, noBase);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(
        /^error: no base image for bare VMs: the Debian base is built by tools\/setup.*run tools\/setup.*base_image = "IMAGE".*SMOLVM_BASE_IMAGE=IMAGE.*\n$/,
      );
      expect(r.stderr.split('\n')).toHaveLength(2);
    }
    expect(fs.existsSync(path.join(empty, 'home', 'data', 'machines', 'x'))).toBe(false);
  });

  it('a config.toml base_image that is not an image reference is a usage error naming file:line', () => {
    const configHome = path.join(empty, 'cfg');
    fs.mkdirSync(path.join(configHome, 'config'), { recursive: true });
    fs.writeFileSync(path.join(configHome, 'config', 'config.toml'), '# base\nbase_image = "Not A Reference"\n');
    const r = cli(['machine', 'run', '--', 'true'], { SMOLVM_HOME: configHome });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^error: .*config\.toml:2: 'base_image': is not an image reference/);
  });
});

describe('a bare persistent machine on the Debian base', () => {
  it('apt-get installs from a local repository, and what it installs persists across stop/start with a tool in /usr/local/bin', async () => {
    const created = cli([
      'machine',
      'create',
      'dev',
      '--cpus',
      '1',
      '--memory',
      '512',
      '--storage',
      '1',
      '--overlay',
      '1',
      '--allow-cidr',
      '127.0.0.1/32',
    ]);
    expect(created.stderr).toMatch(/created machine "dev" \(smolvm\.internal\/base:debian-bookworm-[0-9a-f]+,/);
    expect(created.status).toBe(0);
    // The base is an image of the store: listed, and the machine is pinned to its digest.
    expect(cli(['image', 'ls']).stdout).toMatch(/smolvm\.internal\/base:debian-bookworm-[0-9a-f]+ +linux\//);
    const images = JSON.parse(cli(['machine', 'images', '--name', 'dev', '--json']).stdout) as Array<{
      image: string;
      digest: string;
      inStore: boolean;
    }>;
    expect(images[0]).toMatchObject({
      image: expect.stringMatching(/^smolvm\.internal\/base:/),
      digest: expect.stringMatching(/^sha256:/),
      inStore: true,
    });
    expect(cli(['machine', 'start', '--name', 'dev']).status).toBe(0);

    const fhs = exec('dev', 'cat /etc/debian_version; test -d /usr/local/bin && echo fhs; command -v apt-get');
    expect(fhs.stdout).toMatch(/^12\.\d+\nfhs\n\/usr\/bin\/apt-get\n$/);
    const script = [
      `echo '${apt.sourcesLine}' > /etc/apt/sources.list.d/fixture.list`,
      // Only the fixture: the base's own Debian sources are out of reach (no DNS, one CIDR).
      'apt-get -q -o Dir::Etc::SourceList=sources.list.d/fixture.list -o Dir::Etc::SourceParts=- update',
      `apt-get -q -y install ${apt.packageName}`,
      "printf '#!/bin/sh\\necho tool works\\n' > /usr/local/bin/mytool && chmod 755 /usr/local/bin/mytool",
    ].join(' && ');
    // Not spawnSync: the repository is served from this process.
    const install = await smolvmAsync(['machine', 'exec', '--name', 'dev', '--', '/bin/sh', '-c', script], env);
    expect([install.status, install.stderr]).toEqual([0, expect.any(String)]);
    expect(install.stdout).toMatch(/Setting up smolvm-hello \(1\.0\)/);
    expect(apt.requests).toContain(`${apt.packageName}_1.0_all.deb`);
    expect(exec('dev', `${apt.packageName}; mytool`).stdout).toBe(`${apt.greeting}\ntool works\n`);

    expect(cli(['machine', 'stop', '--name', 'dev']).status).toBe(0);
    expect(cli(['machine', 'start', '--name', 'dev']).status).toBe(0);
    const after = exec('dev', `${apt.packageName}; mytool; dpkg-query -W -f='\${Status}\\n' ${apt.packageName}`);
    expect(after.stdout).toBe(`${apt.greeting}\ntool works\ninstall ok installed\n`);
    expect(after.status).toBe(0);
    expect(cli(['machine', 'stop', '--name', 'dev']).status).toBe(0);
  });
});

describe('machine run on the Debian base', () => {
  it('machine run -it is a bash shell on a pty in the Debian root; the next run restores a fresh root', async () => {
    // `script` gives smolvm a real terminal; the test types into it like a user.
    const cmd = `${process.execPath} ${CLI} machine run --cpus 1 --memory 256 -it`;
    const pty = startPty(cmd, env, 400_000);
    try {
      // bash's prompt in the root directory: user@host:/#
      await pty.waitFor(/:\/# /);
      pty.type('echo "shell=$0 tty=$(tty) debian=$(cat /etc/debian_version)"; echo scratch > /etc/scratch\r');
      await pty.waitFor(/shell=\S+ tty=\/dev\/pts\/\d+ debian=12\.\d+/);
      expect(pty.output).toMatch(/shell=(\/bin\/)?bash/);
      pty.type('exit 3\r');
      expect(await pty.exited).toBe(3);
    } finally {
      pty.kill();
    }
    // The shell's run saved the bare shape's snapshot with the Debian root in it; this one restores it.
    const again = cli([
      'machine',
      'run',
      '--cpus',
      '1',
      '--memory',
      '256',
      '--debug',
      '--',
      '/bin/sh',
      '-c',
      'test -e /etc/scratch || echo fresh; apt-get --version | head -n1',
    ]);
    expect(again.stdout).toMatch(/^fresh\napt \d/);
    expect(again.stderr).toBe('');
    expect(again.status).toBe(0);
  });
});
