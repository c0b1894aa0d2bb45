// Issue 14, item 7, through the built `smolvm` executable: what smolvm writes is owner-only
// whatever the umask (so no other local user can read `-e` secrets or plant anything), and a V8
// code cache another user planted in a shared SMOLVM_HOME never runs. No VM is booted here.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { featureImage } from '../../../../tools/fixtures/images';
import { CLI, e2eSetup, smolvm, type E2eSetup } from '../helpers';
import { cacheFileFor, readCacheFile, writeCacheFile } from '../../src/code-cache';
import { asAttacker, rootOnlyIt } from './localusers-helpers';

jest.setTimeout(180_000);

const rootOnly = rootOnlyIt('localusers-state');

let setup: E2eSetup;
beforeAll(async () => {
  setup = await e2eSetup('smolvm-localusers-state-', { 'smolvm-test/feature:latest': featureImage() });
});
afterAll(async () => {
  await setup?.close();
});

/** Runs the CLI under umask 000, as a user with a lax umask would. */
function smolvmUmask000(args: string[], env: NodeJS.ProcessEnv) {
  const r = spawnSync('sh', ['-c', 'umask 000 && exec "$0" "$@"', process.execPath, CLI, ...args], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Everything under `dir` that its group or others can read, write or enter, as "mode path". */
function notPrivate(dir: string): string[] {
  const found: string[] = [];
  const walk = (p: string) => {
    const st = fs.lstatSync(p);
    if (!st.isSymbolicLink() && (st.mode & 0o077) !== 0)
      found.push(`${(st.mode & 0o777).toString(8)} ${path.relative(dir, p) || '.'}`);
    if (st.isDirectory()) for (const name of fs.readdirSync(p)) walk(path.join(p, name));
  };
  walk(dir);
  return found;
}

describe('state is owner-only whatever the umask', () => {
  it('machine records (with -e secrets), disks, locks, the image store, the code cache', () => {
    const home = path.join(setup.home, 'umask000');
    const env = { ...setup.env, SMOLVM_HOME: home };
    for (const args of [
      ['machine', 'create', 'web', '-e', 'API_TOKEN=s3cret', '-I', setup.refs['smolvm-test/feature:latest']],
      ['machine', 'ls'],
      ['image', 'ls'],
      ['--version'],
    ]) {
      const r = smolvmUmask000(args, env);
      expect({ args, status: r.status, ...(r.status === 0 ? {} : { stderr: r.stderr }) }).toEqual({ args, status: 0 });
    }
    expect(fs.readFileSync(path.join(home, 'data', 'machines', 'web', 'machine.json'), 'utf8')).toContain(
      'API_TOKEN=s3cret',
    );
    expect(fs.readdirSync(path.join(home, 'cache')).sort()).toEqual(['code-cache', 'disk-templates', 'oci']);
    expect(fs.readdirSync(path.join(home, 'cache', 'oci')).sort()).toEqual(['blobs', 'erofs', 'images', 'ingest']);
    expect(notPrivate(home)).toEqual([]);
  });
});

describe('a code cache planted in a shared SMOLVM_HOME', () => {
  let hostile: Buffer;

  beforeAll(() => {
    // What another user can make: the cache V8 produces for a copy of the CLI whose version
    // string is changed (same length), under the key the real CLI's cache has.
    const work = path.join(setup.home, 'attacker');
    const evilDist = path.join(work, 'dist');
    fs.mkdirSync(evilDist, { recursive: true });
    const dist = path.dirname(CLI);
    for (const f of ['smolvm.js', 'smolvm-prestart.js']) fs.copyFileSync(path.join(dist, f), path.join(evilDist, f));
    const main = fs.readFileSync(path.join(dist, 'smolvm-main.js'), 'utf8');
    // The bundler writes `var version = "0.1.0";`, or `version = "0.1.0";` in a lazily initialised module.
    const versionLine = /\bversion = "0\.1\.0";/;
    expect(main).toMatch(versionLine);
    fs.writeFileSync(path.join(evilDist, 'smolvm-main.js'), main.replace(versionLine, 'version = "PWND!";'));
    const evilHome = path.join(work, 'evil-home');
    const genuineHome = path.join(work, 'genuine-home');
    for (const [cli, home] of [
      [path.join(evilDist, 'smolvm.js'), evilHome],
      [CLI, genuineHome],
    ]) {
      const r = spawnSync(process.execPath, [cli, '--version'], {
        env: { ...process.env, ...setup.env, SMOLVM_HOME: home },
        encoding: 'utf8',
      });
      expect(r.status).toBe(0);
    }
    const evil = readCacheFile(
      cacheFileFor(path.join(evilHome, 'cache', 'code-cache'), path.join(evilDist, 'smolvm-main.js')),
    );
    const genuine = readCacheFile(
      cacheFileFor(path.join(genuineHome, 'cache', 'code-cache'), path.join(dist, 'smolvm-main.js')),
    );
    const file = path.join(work, 'planted.v8cache');
    writeCacheFile(file, genuine.header, evil.data);
    fs.chmodSync(file, 0o644);
    hostile = fs.readFileSync(file);
  });

  const version = (home: string) => smolvm(['--debug', '--version'], { ...setup.env, SMOLVM_HOME: home });
  const plantedPath = (home: string) =>
    cacheFileFor(path.join(home, 'cache', 'code-cache'), path.join(path.dirname(CLI), 'smolvm-main.js'));

  it('control: in this user own private home the same file is used, and runs the other code', () => {
    const home = path.join(setup.home, 'own');
    fs.mkdirSync(path.dirname(plantedPath(home)), { recursive: true, mode: 0o700 });
    fs.writeFileSync(plantedPath(home), hostile, { mode: 0o600 });
    expect(version(home).stdout).toBe('PWND!\n');
  });

  rootOnly('planted by another user: ignored, and --debug says why', () => {
    const shared = path.join(setup.home, 'shared');
    fs.mkdirSync(shared, { mode: 0o777 });
    fs.chmodSync(shared, 0o777);
    fs.chmodSync(setup.home, 0o755);
    fs.writeFileSync(path.join(shared, 'planted'), hostile, { mode: 0o644 });
    const plant = `mkdir -p '${path.dirname(plantedPath(shared))}' && cp '${path.join(shared, 'planted')}' '${plantedPath(shared)}'`;
    asAttacker(plant);
    const run = version(shared);
    expect(run.stdout).toBe('0.1.0\n');
    expect(run.stderr).toContain(
      `smolvm: note: code cache: not used: refusing ${shared}: it is writable by others without the sticky bit (mode 777)`,
    );
    // It is not written there either: the planted file is all there is.
    expect(fs.readdirSync(path.dirname(plantedPath(shared)))).toEqual([path.basename(plantedPath(shared))]);
  });
});
