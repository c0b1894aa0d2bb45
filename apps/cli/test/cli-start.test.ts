// Start-up of the built `smolvm` executable: its V8 code cache (src/code-cache.ts) as users meet
// it, and the heavy modules that commands which do not need them must not load.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLI, smolvm, smolvmAsync } from './helpers';
import { version } from '../package.json';
import { readCacheFile } from '../src/code-cache';

let home: string;
let cacheDir: string;
let env: NodeJS.ProcessEnv;

beforeEach(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-cli-start-'));
  cacheDir = path.join(home, 'cache', 'code-cache');
  env = { SMOLVM_HOME: home, SMOLVM_NO_CODE_CACHE: '', NODE_OPTIONS: '' };
});
afterEach(() => fs.rmSync(home, { recursive: true, force: true }));

const noMachines = 'no machines yet; create one with `smolvm machine create NAME`\n';
const cacheFiles = () => (fs.existsSync(cacheDir) ? fs.readdirSync(cacheDir) : []);
const onlyCacheFile = () => {
  const files = cacheFiles();
  expect(files).toEqual([expect.stringMatching(/^cli-[0-9a-f]{16}\.v8cache$/)]);
  return path.join(cacheDir, files[0]);
};

describe('the code cache', () => {
  it('is written under SMOLVM_HOME on the first run, owner-only, and then only read', () => {
    const first = smolvm(['--version'], env);
    expect([first.status, first.stdout, first.stderr]).toEqual([0, `${version}\n`, '']);
    const file = onlyCacheFile();
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(readCacheFile(file).header).toMatchObject({
      bundle: path.join(path.dirname(CLI), 'smolvm-main.js'),
      commands: ['--version'],
    });
    const inode = fs.statSync(file).ino;

    const again = smolvm(['--debug', '--version'], env);
    expect([again.status, again.stdout, again.stderr]).toEqual([0, `${version}\n`, '']);
    expect(fs.statSync(file).ino).toBe(inode);
  });

  it('a corrupt cache is replaced silently; --debug says why', () => {
    smolvm(['--version'], env);
    const file = onlyCacheFile();
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 64] ^= 0xff;
    fs.writeFileSync(file, bytes);
    const quiet = smolvm(['machine', 'ls'], env);
    expect([quiet.status, quiet.stderr]).toEqual([0, noMachines]);
    expect(readCacheFile(file).header.commands).toEqual(['machine ls']);

    fs.writeFileSync(file, 'garbage');
    const debug = smolvm(['--debug', 'machine', 'ls'], env);
    expect(debug.status).toBe(0);
    expect(debug.stderr).toMatch(
      /^smolvm: note: code cache: .*\.v8cache is unusable \(not a smolvm code cache\); it will be rewritten\nno machines yet/,
    );
    expect(readCacheFile(file).header.commands).toEqual(['machine ls']);
  });

  it('the early-start loader (dist/smolvm-prestart.js) goes through a cache file of its own', () => {
    const r = smolvm(['machine', 'start', '--name', 'nosuch'], env);
    expect(r.status).not.toBe(0);
    const bundles = cacheFiles().map((f) => readCacheFile(path.join(cacheDir, f)).header.bundle);
    expect(bundles).toContain(path.join(path.dirname(CLI), 'smolvm-prestart.js'));
    expect(bundles).toContain(path.join(path.dirname(CLI), 'smolvm-start.js'));
  });

  it('SMOLVM_NO_CODE_CACHE=1 neither reads nor writes one', () => {
    const r = smolvm(['--version'], { ...env, SMOLVM_NO_CODE_CACHE: '1' });
    expect([r.status, r.stdout]).toEqual([0, `${version}\n`]);
    expect(fs.existsSync(cacheDir)).toBe(false);
  });

  it('a cache directory that cannot be created costs nothing but the cache', () => {
    fs.writeFileSync(path.join(home, 'cache'), 'a file where the cache directory would be');
    const r = smolvm(['--version'], env);
    expect([r.status, r.stdout, r.stderr]).toEqual([0, `${version}\n`, '']);
  });

  // Twelve node processes at once: seconds on a loaded 2-core host, hence the test's time limit.
  it('processes starting and writing at once all run, and leave one valid file', async () => {
    const commands = [
      ['--version'],
      ['--help'],
      ['machine', 'ls'],
      ['image', 'ls'],
      ['machine', '--help'],
      ['image', '--help'],
    ];
    // Round 1: no cache yet, every process writes one. Round 2: they read while others write.
    for (let round = 0; round < 2; round++) {
      const results = await Promise.all(commands.map((args) => smolvmAsync(args, env)));
      for (const r of results) expect([r.status, r.stderr]).toEqual([0, expect.not.stringContaining('code cache')]);
      expect(results[0].stdout).toBe(`${version}\n`);
      const header = readCacheFile(onlyCacheFile()).header;
      expect(commands.map((c) => c.join(' '))).toEqual(expect.arrayContaining(header.commands));
    }
  }, 60_000);

  it('stack traces stay source-mapped under --enable-source-maps (the cache steps aside)', () => {
    const args = ['--debug', 'machine', 'status', '--name', 'missing-machine'];
    const plain = smolvm(args, env);
    expect(plain.stderr).toMatch(/\n\s+at .*smolvm-main\.js:\d+:\d+/);
    const mapped = smolvm(args, { ...env, NODE_OPTIONS: '--enable-source-maps' });
    expect(mapped.status).toBe(1);
    expect(mapped.stderr).toMatch(/\n\s+at .*libs\/machine-store\/src\/\S+\.ts:\d+:\d+/);
  });
});

describe('start-up loads only what a command needs', () => {
  /** The Node built-ins a CLI run loaded beyond what bare node loads. */
  function builtinsLoadedBy(args: string[], status = 0): string[] {
    const out = path.join(home, 'modules.json');
    const preload = path.join(home, 'preload.js');
    fs.writeFileSync(
      preload,
      `const base = new Set(process.moduleLoadList);
process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(process.moduleLoadList.filter((m) => !base.has(m)))));\n`,
    );
    const r = smolvm(args, { ...env, NODE_OPTIONS: `--require ${preload}` });
    expect(r.status).toBe(status);
    return (JSON.parse(fs.readFileSync(out, 'utf8')) as string[])
      .filter((m) => m.startsWith('NativeModule '))
      .map((m) => m.slice('NativeModule '.length));
  }

  // (net is Node's own doing when stdout is a pipe, as here.)
  it('--version and --help load no crypto, HTTP or child process modules', () => {
    for (const args of [['--version'], ['--help']]) {
      const heavy = builtinsLoadedBy(args).filter((m) => /^(crypto|http|http2|tls|child_process)$/.test(m));
      expect([args, heavy]).toEqual([args, []]);
    }
  });

  it('machine ls does not evaluate undici (which loads http, http2 and tls)', () => {
    const loaded = builtinsLoadedBy(['machine', 'ls']);
    for (const name of ['http', 'http2', 'tls']) expect(loaded).not.toContain(name);
  });

  /**
   * `args` (about a machine that does not exist) fail from `bundle`, not the CLI's, as `debugArgs`
   * show in their stack, with the CLI's own line; the plain run's result.
   */
  function runsFrom(bundle: string, args: string[], debugArgs: string[]) {
    const fast = smolvm(debugArgs, env);
    expect(fast.stderr).toMatch(new RegExp(`\\n\\s+at .*${bundle.replace('.', '\\.')}:\\d+:\\d+`));
    expect(fast.stderr).not.toMatch(/smolvm-main\.js/);
    const quick = smolvm(args, env);
    expect([quick.status, quick.stdout, quick.stderr]).toEqual([
      1,
      '',
      'error: machine "missing-machine" does not exist; see existing machines with `smolvm machine ls`\n',
    ]);
    return quick;
  }

  it("a plain machine start runs from its own small bundle (src/start-fast.ts), with the CLI's own error line", () => {
    const args = ['machine', 'start', '--name', 'missing-machine'];
    const quick = runsFrom('smolvm-start.js', args, [...args, '--debug']);
    // --cold is not a plain form: the full CLI takes it, with the same line, and no code cache
    // note: the caches the earlier runs wrote are read (a process that writes one keeps its
    // bytecode meanwhile, and the caches it reads are still checked under V8's default flags).
    const viaCli = smolvm([...args, '--cold', '--debug'], env);
    expect(viaCli.stderr).toMatch(/smolvm-main\.js/);
    expect(viaCli.stderr.split('\n')[0]).toBe(quick.stderr.trimEnd());
  });

  it("machine exec runs from its own small bundle (src/exec-fast.ts), with the CLI's own error line", () => {
    const args = ['machine', 'exec', '--name', 'missing-machine', '--', 'true'];
    const loaded = builtinsLoadedBy(args, 1);
    for (const name of ['crypto', 'child_process', 'http', 'http2', 'tls']) expect(loaded).not.toContain(name);
    // The same line and exit code as the full CLI, which takes any form the fast path declines.
    const quick = runsFrom('smolvm-exec.js', args, ['--debug', ...args]);
    const viaCli = smolvm(['machine', 'exec', '--name', 'missing-machine', '--no-tty', '--', 'true'], env);
    expect([viaCli.status, viaCli.stdout, viaCli.stderr]).toEqual([quick.status, quick.stdout, quick.stderr]);
  });
});

describe('NODE_EXTRA_CA_CERTS (see libs/common/src/ca-certs.ts)', () => {
  const missing = () => path.join(home, 'no-such-ca.pem');
  const nodeWarning = /Ignoring extra certs/;

  it('the executable starts node without it (node reads it eagerly), and puts it back for the CLI and its children', () => {
    // node run on the bundle itself reads the file at start-up and warns about a missing one:
    const viaNode = smolvm(['--version'], { ...env, NODE_EXTRA_CA_CERTS: missing() });
    expect(viaNode.stderr).toMatch(nodeWarning);

    const out = path.join(home, 'env.json');
    const preload = path.join(home, 'preload.js');
    fs.writeFileSync(
      preload,
      `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify([process.env.NODE_EXTRA_CA_CERTS ?? null, process.env.SMOLVM_NODE_EXTRA_CA_CERTS ?? null])));\n`,
    );
    const direct = spawnSync(CLI, ['--version'], {
      env: { ...process.env, ...env, NODE_EXTRA_CA_CERTS: missing(), NODE_OPTIONS: `--require ${preload}` },
      encoding: 'utf8',
    });
    expect([direct.status, direct.stdout, direct.stderr]).toEqual([0, `${version}\n`, '']);
    expect(JSON.parse(fs.readFileSync(out, 'utf8'))).toEqual([missing(), null]);
  });

  it('without it set, the executable leaves the environment without it', () => {
    const out = path.join(home, 'env.json');
    const preload = path.join(home, 'preload.js');
    fs.writeFileSync(
      preload,
      `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(Object.keys(process.env).filter((k) => k.includes('EXTRA_CA')))));\n`,
    );
    const { NODE_EXTRA_CA_CERTS: _drop, ...without } = process.env;
    const direct = spawnSync(CLI, ['--version'], {
      env: { ...without, ...env, NODE_OPTIONS: `--require ${preload}` },
      encoding: 'utf8',
    });
    expect(direct.status).toBe(0);
    expect(JSON.parse(fs.readFileSync(out, 'utf8'))).toEqual([]);
  });
});
