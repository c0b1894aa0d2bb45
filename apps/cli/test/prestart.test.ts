// Which invocation an early-start recipe belongs to (src/prestart.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { RunRecipe } from '@smolvm/runtime/prestart';
import { fromShapeRecipe, invocationKey, keepRecipe, plainStartName, sameButRunDir } from '../src/prestart';

const bundle = __filename;
const env = { PATH: '/usr/bin', SMOLVM_HOME: '/h', HOME: '/root' };

describe('invocationKey', () => {
  const key = (args: string[], cwd = '/w', e: NodeJS.ProcessEnv = env) => invocationKey(args, cwd, e, bundle);

  it('names the flags before --, not the command after it', () => {
    const base = key(['machine', 'run', '--cpus', '1', '--', 'true']);
    expect(key(['machine', 'run', '--cpus', '1', '--', 'echo', 'hi'])).toBe(base);
    expect(key(['machine', 'run', '--cpus', '2', '--', 'true'])).not.toBe(base);
    expect(key(['machine', 'run', '--cpus', '1', '--debug', '--', 'true'])).not.toBe(base);
  });

  it('depends on the working directory (Smolfile) and the environment that can change the VM, not on the rest', () => {
    const args = ['machine', 'run', '--', 'true'];
    const base = key(args);
    expect(key(args, '/elsewhere')).not.toBe(base);
    expect(key(args, '/w', { ...env, SMOLVM_HOME: '/other' })).not.toBe(base);
    expect(key(args, '/w', { ...env, SMOLVM_KERNEL: '/k' })).not.toBe(base);
    expect(key(args, '/w', { ...env, PATH: '/opt/qemu/bin:/usr/bin' })).not.toBe(base);
    expect(
      key(args, '/w', { ...env, SMOLVM_TIMINGS: '/t.json', SMOLVM_NO_EARLY_START: '1', TERM: 'xterm', LANG: 'C' }),
    ).toBe(base);
  });
});

describe('sameButRunDir', () => {
  const recipe = (run: string, extra = '') =>
    JSON.stringify({ v: 1, driver: 'kvm', restore: { runDir: run, args: [`${run}/agent.sock${extra}`] } });

  it('recipes of two runs differ only in their run directories', () => {
    expect(sameButRunDir(recipe('/r/vm-a'), recipe('/r/vm-b'))).toBe(true);
    expect(sameButRunDir(recipe('/r/vm-a'), recipe('/r/vm-b', ',x'))).toBe(false);
    expect(sameButRunDir('not json', 'not json')).toBe(true);
    expect(sameButRunDir('not json', recipe('/r/vm-a'))).toBe(false);
  });
});

describe('shape recipes (a machine first start from another machine of its shape)', () => {
  let home: string;
  let cache: string;
  let henv: NodeJS.ProcessEnv;
  const dirOf = (name: string) => path.join(home, 'data', 'machines', name);
  const supervise = (name: string) => ['machine', '_supervise', '--name', name, '--image-erofs', '/img.erofs'];
  const recipe = (name: string, extra: { args?: string[]; setup?: Record<string, unknown> } = {}): RunRecipe =>
    ({
      v: 1,
      driver: 'kvm',
      restore: {
        file: '/usr/bin/setpriv',
        args: [
          '-blockdev',
          `driver=raw,file.filename=${dirOf(name)}/overlay.ext4`,
          '-fsdev',
          `local,id=fs0,path=${dirOf(name)}/inbox,readonly=on`,
          ...(extra.args ?? []),
        ],
        runDir: '/run/vm-a',
      },
      setup: { hostname: name, volumes: [{ tag: 'vol0', path: '/run/smolvm-inbox', readOnly: true }], ...extra.setup },
    }) as unknown as RunRecipe;
  const shapes = () => fs.readdirSync(path.join(cache, 'prestart')).filter((f) => f.startsWith('shape-'));

  beforeEach(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-shape-'));
    cache = path.join(home, 'cache');
    henv = { ...env, SMOLVM_HOME: home };
    for (const n of ['alpha', 'beta']) {
      fs.mkdirSync(dirOf(n), { recursive: true, mode: 0o700 });
      writeRecord(n);
    }
  });
  /** A machine record as machine create writes it: only its name, id and creation time differ. */
  const writeRecord = (name: string, extra: Record<string, unknown> = {}) =>
    fs.writeFileSync(
      path.join(dirOf(name), 'machine.json'),
      JSON.stringify({ schemaVersion: 1, id: `id-${name}`, name, createdAt: `t-${name}`, cpus: 1, ...extra }),
      { mode: 0o600 },
    );
  afterEach(() => fs.rmSync(home, { recursive: true, force: true }));

  it("is the recipe with the machine's directory and name as slots; another machine gets its own in them", () => {
    keepRecipe(supervise('alpha'), cache, bundle, recipe('alpha'), henv);
    expect(shapes()).toHaveLength(1);
    const shape = fs.readFileSync(path.join(cache, 'prestart', shapes()[0]), 'utf8');
    expect(shape).not.toContain(dirOf('alpha'));
    expect(shape).not.toContain('alpha');
    expect(fs.statSync(path.join(cache, 'prestart', shapes()[0])).mode & 0o777).toBe(0o600);
    const beta = fromShapeRecipe(supervise('beta'), cache, bundle, henv);
    expect(beta && JSON.parse(beta)).toEqual(JSON.parse(JSON.stringify(recipe('beta'))));
    // The inbox QEMU shares, made as the supervisor makes it.
    expect(fs.statSync(path.join(dirOf('beta'), 'inbox')).mode & 0o777).toBe(0o700);
    // Another image is another shape; so is another environment.
    expect(fromShapeRecipe([...supervise('beta').slice(0, 4), '--image-erofs', '/b.erofs'], cache, bundle, henv)).toBe(
      undefined,
    );
    expect(fromShapeRecipe(supervise('beta'), cache, bundle, { ...henv, SMOLVM_KERNEL: '/k' })).toBe(undefined);
  });

  it('is only for a machine made alike (its record but for name, id and time), never a copy of a snapshot', () => {
    keepRecipe(supervise('alpha'), cache, bundle, recipe('alpha'), henv);
    writeRecord('beta', { cpus: 2 });
    expect(fromShapeRecipe(supervise('beta'), cache, bundle, henv)).toBe(undefined);
    writeRecord('beta', { runtime: { pid: 1 } });
    expect(fromShapeRecipe(supervise('beta'), cache, bundle, henv)).toBeDefined();
    writeRecord('beta', { fromSnapshot: 'alpha:1' });
    expect(fromShapeRecipe(supervise('beta'), cache, bundle, henv)).toBe(undefined);
    // A record another user could have written says nothing.
    writeRecord('beta');
    fs.chmodSync(path.join(dirOf('beta'), 'machine.json'), 0o666);
    expect(fromShapeRecipe(supervise('beta'), cache, bundle, henv)).toBe(undefined);
  });

  it('is never kept for a machine with volumes, a network or an SSH agent of its own', () => {
    keepRecipe(
      supervise('alpha'),
      cache,
      bundle,
      recipe('alpha', { args: ['-fsdev', 'local,id=fs1,path=/home/u/src'] }),
      henv,
    );
    keepRecipe(supervise('alpha'), cache, bundle, recipe('alpha', { args: ['-netdev', 'stream,id=n0'] }), henv);
    keepRecipe(supervise('alpha'), cache, bundle, recipe('alpha', { setup: { network: { mac: 'x' } } }), henv);
    keepRecipe(supervise('alpha'), cache, bundle, recipe('alpha', { setup: { sshAgent: true } }), henv);
    expect(shapes()).toEqual([]);
    expect(fromShapeRecipe(supervise('beta'), cache, bundle, henv)).toBe(undefined);
  });

  it('is not used where the inbox is something else than an owner-only directory', () => {
    keepRecipe(supervise('alpha'), cache, bundle, recipe('alpha'), henv);
    fs.symlinkSync('/tmp', path.join(dirOf('beta'), 'inbox'));
    expect(fromShapeRecipe(supervise('beta'), cache, bundle, henv)).toBe(undefined);
  });

  it('only for a supervisor invocation with a valid machine name', () => {
    keepRecipe(supervise('alpha'), cache, bundle, recipe('alpha'), henv);
    expect(fromShapeRecipe(['machine', 'run', '--name', 'beta'], cache, bundle, henv)).toBe(undefined);
    expect(fromShapeRecipe(supervise('../beta'), cache, bundle, henv)).toBe(undefined);
  });
});

describe('plainStartName (the starts whose supervisor the loader spawns)', () => {
  it('names the machine of the plain forms parsePlainStart takes (start-fast.test.ts), none otherwise', () => {
    expect(plainStartName(['machine', 'start'])).toBe('default');
    expect(plainStartName(['machine', 'start', '-n', 'dev', '--debug', '--quiet'])).toBe('dev');
    expect(plainStartName(['machine', 'start', '--cold'])).toBeUndefined();
  });
});
