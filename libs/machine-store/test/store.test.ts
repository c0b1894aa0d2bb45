import fs from 'node:fs';
import path from 'node:path';
import { ConflictError, NotFoundError, SmolvmError, UsageError, formatError, processStartTime } from '@smolvm/common';
import { MACHINE_DEFAULTS, MachineRecordError, MachineStore, SCHEMA_VERSION, type MachineRecord } from '../src';
import { tempDir } from './helpers';

let root: string;
let store: MachineStore;

beforeEach(() => {
  root = path.join(tempDir('store'), 'machines');
  store = new MachineStore({ root, lockTimeoutMs: 2_000 });
});
afterEach(() => fs.rmSync(path.dirname(root), { recursive: true, force: true }));

/** A pid + start time that cannot be alive: this process's pid with another start time. */
function deadOwnerPrefix(kind: 'tmp' | 'trash'): string {
  const start = processStartTime(process.pid) ?? 0;
  return `.${kind}-${process.pid}-${start + 1000}-abcdef`;
}

function rootEntries(): string[] {
  return fs
    .readdirSync(root)
    .filter((e) => e !== '.locks')
    .sort();
}

function readJson(file: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
}

describe('MachineStore root', () => {
  it('defaults to <data>/machines and honours SMOLVM_HOME', () => {
    expect(MachineStore.defaultRoot({ SMOLVM_HOME: '/x/home' })).toBe('/x/home/data/machines');
    const saved = process.env.SMOLVM_HOME;
    process.env.SMOLVM_HOME = '/y/home';
    try {
      expect(new MachineStore().root).toBe('/y/home/data/machines');
    } finally {
      if (saved === undefined) delete process.env.SMOLVM_HOME;
      else process.env.SMOLVM_HOME = saved;
    }
    expect(new MachineStore('/some/root').root).toBe('/some/root');
  });

  it('machineDir validates the name before building a path', () => {
    expect(store.machineDir('web')).toBe(path.join(root, 'web'));
    expect(() => store.machineDir('../escape')).toThrow(UsageError);
    expect(() => store.get('a/b')).toThrow(UsageError);
  });
});

describe('create / get', () => {
  it('creates a complete record with the reference defaults', async () => {
    const before = Date.now();
    const record = await store.create({ name: 'web' });
    expect(record).toMatchObject({
      schemaVersion: SCHEMA_VERSION,
      name: 'web',
      cpus: 4,
      memoryMiB: 8192,
      storageGiB: 20,
      overlayGiB: 2,
      net: false,
      allowHosts: [],
      allowCidrs: [],
      volumes: [],
      ports: [],
      env: [],
      init: [],
      sshAgent: false,
    });
    expect(MACHINE_DEFAULTS).toEqual({ cpus: 4, memoryMiB: 8192, storageGiB: 20, overlayGiB: 2 });
    expect(record.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(record.createdAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(Date.parse(record.createdAt)).toBeGreaterThanOrEqual(before - 1);
    expect(record).not.toHaveProperty('image');
    expect(record).not.toHaveProperty('runtime');
    expect(store.get('web')).toEqual(record);
    expect(readJson(path.join(root, 'web', 'machine.json'))).toEqual(record);
    expect(rootEntries()).toEqual(['web']);
    expect(fs.readdirSync(path.join(root, 'web'))).toEqual(['machine.json']);
  });

  it('keeps every setting given and round-trips it through the file', async () => {
    const record = await store.create({
      name: 'dev',
      image: 'python:3.12-alpine',
      cpus: 2,
      memoryMiB: 1024,
      storageGiB: 40,
      overlayGiB: 4,
      net: true,
      allowHosts: ['api.stripe.com'],
      allowCidrs: ['10.0.0.0/8'],
      volumes: [{ hostPath: '/home/u/src', guestPath: '/app', readOnly: true }],
      ports: [{ hostPort: 8080, guestPort: 80 }],
      env: ['PORT=8080', 'EMPTY='],
      workdir: '/app',
      init: ['pip install -r requirements.txt'],
      sshAgent: true,
      smolfile: '/home/u/Smolfile',
      imageDigest: `sha256:${'a'.repeat(64)}`,
      user: '1000:1000',
      health: {
        exec: ['curl', '-f', 'http://127.0.0.1/'],
        intervalMs: 10_000,
        timeoutMs: 2_000,
        retries: 3,
        startupGraceMs: 0,
      },
      runtime: {
        pid: 12,
        startTime: 34,
        socket: '/run/s.sock',
        startedAt: '2026-01-01T00:00:00.000Z',
        vm: { pid: 13, startTime: null },
      },
    });
    expect(store.get('dev')).toEqual(record);
    expect(record.health?.exec).toEqual(['curl', '-f', 'http://127.0.0.1/']);
    expect(record.runtime?.vm).toEqual({ pid: 13, startTime: null });
    expect(record.volumes[0]).toEqual({ hostPath: '/home/u/src', guestPath: '/app', readOnly: true });
    // machine.json keeps its own spelling: files written by earlier versions stay readable.
    const file = JSON.parse(fs.readFileSync(path.join(root, 'dev', 'machine.json'), 'utf8'));
    expect([file.volumes, file.ports]).toEqual([
      [{ host: '/home/u/src', guest: '/app', readOnly: true }],
      [{ host: 8080, guest: 80 }],
    ]);
    expect(record.smolfile).toBe('/home/u/Smolfile');
  });

  it('turns net on when an allow list is given (they imply --net)', async () => {
    expect((await store.create({ name: 'a', allowHosts: ['example.com'] })).net).toBe(true);
    expect((await store.create({ name: 'b', allowCidrs: ['10.0.0.0/8'] })).net).toBe(true);
    expect((await store.create({ name: 'c', net: false })).net).toBe(false);
  });

  it('rejects a taken name with a ConflictError and leaves the original alone', async () => {
    const first = await store.create({ name: 'web', cpus: 2 });
    const err = await store.create({ name: 'web', cpus: 8 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect(formatError(err)).toBe(
      'error: machine "web" already exists; choose another name, or delete it first with `smolvm machine delete web`',
    );
    expect(store.get('web')).toEqual(first);
    expect(rootEntries()).toEqual(['web']);
  });

  it('lets populate fill the directory before the machine appears, and leaves nothing when it fails', async () => {
    const made = await store.create(
      { name: 'disks' },
      { populate: (dir) => fs.writeFileSync(path.join(dir, 'disk.img'), 'x') },
    );
    expect(fs.readFileSync(path.join(store.machineDir('disks'), 'disk.img'), 'utf8')).toBe('x');
    expect(store.get('disks')).toEqual(made);
    await expect(
      store.create({ name: 'broken' }, { populate: () => Promise.reject(new Error('mkfs failed')) }),
    ).rejects.toThrow('mkfs failed');
    expect(rootEntries()).toEqual(['disks']);
  });

  it('refuses to put a machine over any existing entry, even an empty directory', async () => {
    fs.mkdirSync(path.join(root, 'empty'), { recursive: true });
    await expect(store.create({ name: 'empty' })).rejects.toThrow('machine "empty" already exists');
    expect(fs.readdirSync(path.join(root, 'empty'))).toEqual([]);
  });

  it('rejects invalid settings before anything reaches the disk', async () => {
    await expect(store.create({ name: 'x', cpus: 0 })).rejects.toThrow(
      "'cpus' must be an integer from 1 to 1024, got number 0",
    );
    await expect(store.create({ name: 'x', ports: [{ hostPort: 70000, guestPort: 80 }] })).rejects.toThrow(
      "'ports[0].host' must be an integer from 1 to 65535",
    );
    await expect(store.create({ name: 'x', env: ['NOEQUALS'] })).rejects.toThrow(
      "'env' must be a list of KEY=VALUE strings",
    );
    await expect(
      store.create({ name: 'x', volumes: [{ hostPath: '/h', guestPath: 'rel', readOnly: false }] }),
    ).rejects.toThrow("'volumes[0].guest' must be an absolute path");
    await expect(store.create({ name: 'x', imageDigest: 'sha256:ABC' })).rejects.toThrow(
      "'imageDigest' must be sha256: followed by 64 lowercase hex digits",
    );
    await expect(store.create({ name: 'Bad' })).rejects.toThrow(UsageError);
    expect(fs.existsSync(root) ? rootEntries() : []).toEqual([]);
  });

  it('reports a missing machine as NotFoundError pointing at `smolvm machine ls`', () => {
    expect(() => store.get('nope')).toThrow(NotFoundError);
    expect(
      formatError(
        (() => {
          try {
            store.get('nope');
          } catch (e) {
            return e;
          }
        })(),
      ),
    ).toBe('error: machine "nope" does not exist; see existing machines with `smolvm machine ls`');
    expect(store.exists('nope')).toBe(false);
  });
});

describe('list', () => {
  it('is empty when the root does not exist yet', () => {
    expect(store.list()).toEqual({ machines: [], skipped: [] });
  });

  it('returns machines sorted by name', async () => {
    for (const name of ['web', 'a1', 'default', 'zeta', 'b.2']) await store.create({ name });
    expect(store.list().machines.map((m) => m.name)).toEqual(['a1', 'b.2', 'default', 'web', 'zeta']);
    expect(store.list().skipped).toEqual([]);
  });

  it('skips and reports corrupt, incomplete and foreign entries without failing', async () => {
    await store.create({ name: 'good' });
    await store.create({ name: 'broken' });
    fs.writeFileSync(path.join(root, 'broken', 'machine.json'), '{"schemaVersion": 1, "na');
    fs.mkdirSync(path.join(root, 'halfway'));
    fs.writeFileSync(path.join(root, 'stray-file'), 'x');
    fs.mkdirSync(path.join(root, 'Upper'));
    const { machines, skipped } = store.list();
    expect(machines.map((m) => m.name)).toEqual(['good']);
    const byEntry = Object.fromEntries(skipped.map((s) => [s.entry, s]));
    expect(byEntry.broken.reason).toBe('corrupt');
    expect(byEntry.broken.detail).toContain(path.join(root, 'broken', 'machine.json'));
    expect(byEntry.halfway.reason).toBe('incomplete');
    expect(byEntry['stray-file'].reason).toBe('not-a-directory');
    expect(byEntry.Upper.reason).toBe('invalid-name');
    expect(skipped).toHaveLength(4);
  });
});

describe('corrupt records', () => {
  let file: string;
  let good: MachineRecord;
  beforeEach(async () => {
    good = await store.create({ name: 'vm' });
    file = path.join(root, 'vm', 'machine.json');
  });

  function errorFor(content: string): MachineRecordError {
    fs.writeFileSync(file, content);
    try {
      store.get('vm');
    } catch (err) {
      expect(err).toBeInstanceOf(MachineRecordError);
      return err as MachineRecordError;
    }
    throw new Error('expected get() to fail');
  }

  it('names the file when it is not JSON', () => {
    const err = errorFor('{not json');
    expect(err.file).toBe(file);
    expect(err.message).toContain(`machine record ${file} is not valid JSON`);
    expect(err.remedy).toBe('fix or remove the file, or remove the machine with `smolvm machine delete vm`');
  });

  it('names the field and what it holds when a type is wrong', () => {
    expect(errorFor(JSON.stringify({ ...good, cpus: '4' })).message).toBe(
      `machine record ${file} is invalid: 'cpus' must be an integer from 1 to 1024, got the string "4"`,
    );
    expect(errorFor(JSON.stringify({ ...good, net: 'yes' })).message).toContain("'net' must be true or false");
    expect(errorFor(JSON.stringify({ ...good, createdAt: 'yesterday' })).message).toContain(
      "'createdAt' must be an RFC 3339 timestamp",
    );
    expect(errorFor(JSON.stringify({ ...good, ports: [{ host: 1 }] })).message).toContain(
      "'ports[0].guest' must be an integer",
    );
    expect(errorFor(JSON.stringify({ ...good, runtime: { pid: 'x' } })).message).toContain(
      "'runtime.pid' must be an integer",
    );
    expect(errorFor(JSON.stringify({ ...good, id: undefined })).message).toContain(
      "'id' must be a non-empty string of at most 4096 characters, got nothing",
    );
    expect(errorFor('[]').message).toContain('expected a JSON object, got an array');
    expect(errorFor('').message).toContain('is not valid JSON');
  });

  it('checks the schema version, asking for an upgrade when it is newer', () => {
    const newer = errorFor(JSON.stringify({ ...good, schemaVersion: 2 }));
    expect(newer.message).toBe(`machine record ${file} has schema version 2; this smolvm understands version 1`);
    expect(newer.remedy).toContain('upgrade smolvm');
    expect(errorFor(JSON.stringify({ ...good, schemaVersion: undefined })).message).toContain(
      "'schemaVersion' must be 1, got nothing",
    );
  });

  it('rejects a record whose name differs from its directory', () => {
    expect(errorFor(JSON.stringify({ ...good, name: 'other' })).message).toContain(
      'names machine "other" but lives in directory "vm"',
    );
  });

  it('reports a machine directory without machine.json as incomplete', () => {
    fs.rmSync(file);
    expect(() => store.get('vm')).toThrow(`machine "vm" is incomplete: ${file} is missing`);
  });

  it('keeps the ephemeral mark of `machine run -d` and rejects ephemeral: false', async () => {
    fs.writeFileSync(file, JSON.stringify({ ...good, ephemeral: true }));
    expect(store.get('vm')).toEqual({ ...good, ephemeral: true });
    expect(errorFor(JSON.stringify({ ...good, ephemeral: false })).message).toContain(
      "'ephemeral' must be true when present",
    );
    expect(errorFor(JSON.stringify({ ...good, ephemeral: 'yes' })).message).toContain(
      "'ephemeral' must be true or false",
    );
    const made = await store.create({ name: 'tmp1', ephemeral: true });
    expect(made.ephemeral).toBe(true);
    expect(good).not.toHaveProperty('ephemeral');
  });

  it('drops unknown keys instead of carrying them forward', () => {
    fs.writeFileSync(file, JSON.stringify({ ...good, surprise: true }));
    expect(store.get('vm')).toEqual(good);
  });
});

describe('update', () => {
  it('replaces the record under the lock and returns it', async () => {
    const created = await store.create({ name: 'vm' });
    const runtime = {
      pid: 1234,
      startTime: 99,
      socket: path.join(root, 'vm', 'supervisor.sock'),
      startedAt: new Date().toISOString(),
    };
    const updated = await store.update('vm', (r) => ({ ...r, cpus: 8, runtime }));
    expect(updated).toEqual({ ...created, cpus: 8, runtime });
    expect(store.get('vm')).toEqual(updated);
    expect(fs.readdirSync(path.join(root, 'vm'))).toEqual(['machine.json']);
    expect(fs.existsSync(store.lockPath('vm'))).toBe(false);
  });

  it('lets fn mutate its copy without touching what other readers got', async () => {
    await store.create({ name: 'vm' });
    const seen: MachineRecord[] = [];
    await store.update('vm', async (r) => {
      seen.push(structuredClone(r));
      r.env.push('A=1');
      await new Promise((res) => setTimeout(res, 1));
      return r;
    });
    expect(seen[0].env).toEqual([]);
    expect(store.get('vm').env).toEqual(['A=1']);
  });

  it('aborts without writing when fn throws, and releases the lock', async () => {
    const created = await store.create({ name: 'vm' });
    await expect(
      store.update('vm', () => {
        throw new ConflictError('machine is running');
      }),
    ).rejects.toThrow('machine is running');
    expect(store.get('vm')).toEqual(created);
    expect(store.lockHolder('vm')).toBeNull();
  });

  it('refuses invalid results and changes to fixed fields', async () => {
    const created = await store.create({ name: 'vm' });
    await expect(store.update('vm', (r) => ({ ...r, memoryMiB: -1 }))).rejects.toThrow(UsageError);
    await expect(store.update('vm', (r) => ({ ...r, id: 'other' }))).rejects.toThrow(SmolvmError);
    await expect(store.update('vm', (r) => ({ ...r, id: 'other' }))).rejects.toThrow("tried to change 'id'");
    await expect(store.update('vm', (r) => ({ ...r, name: 'zz' }))).rejects.toThrow("tried to change 'name'");
    expect(store.get('vm')).toEqual(created);
  });

  it('fails with NotFoundError for a missing machine and leaves no lock behind', async () => {
    await expect(store.update('ghost', (r) => r)).rejects.toThrow(NotFoundError);
    expect(fs.readdirSync(path.join(root, '.locks'))).toEqual([]);
  });
});

describe('delete', () => {
  it('removes the directory with everything in it and returns the record', async () => {
    const created = await store.create({ name: 'vm' });
    fs.writeFileSync(path.join(root, 'vm', 'storage.raw'), Buffer.alloc(1024));
    fs.mkdirSync(path.join(root, 'vm', 'logs'));
    fs.writeFileSync(path.join(root, 'vm', 'logs', 'console.log'), 'boot');
    expect(await store.delete('vm')).toEqual(created);
    expect(store.exists('vm')).toBe(false);
    expect(() => store.get('vm')).toThrow(NotFoundError);
    expect(rootEntries()).toEqual([]);
    expect(fs.readdirSync(path.join(root, '.locks'))).toEqual([]);
  });

  it('fails with NotFoundError for a missing machine', async () => {
    await expect(store.delete('ghost')).rejects.toThrow('machine "ghost" does not exist');
  });

  it('can delete a machine whose record is corrupt', async () => {
    await store.create({ name: 'vm' });
    fs.writeFileSync(path.join(root, 'vm', 'machine.json'), 'garbage');
    expect(await store.delete('vm')).toBeUndefined();
    expect(rootEntries()).toEqual([]);
  });

  it('runs the guard under the lock and keeps the machine when it refuses', async () => {
    const created = await store.create({ name: 'vm' });
    let sawHolder: number | undefined;
    await expect(
      store.delete('vm', {
        guard: (record) => {
          sawHolder = store.lockHolder('vm')?.pid;
          expect(record).toEqual(created);
          throw new ConflictError('machine "vm" is running', { remedy: 'stop it first' });
        },
      }),
    ).rejects.toThrow('is running');
    expect(sawHolder).toBe(process.pid);
    expect(store.get('vm')).toEqual(created);
  });

  it('allows the name to be created again', async () => {
    const first = await store.create({ name: 'vm' });
    await store.delete('vm');
    const second = await store.create({ name: 'vm' });
    expect(second.id).not.toBe(first.id);
  });
});

describe('temp and trash directories', () => {
  it('are ignored by list, reported as leftover when their owner died, and swept', async () => {
    await store.create({ name: 'real' });
    const deadTmp = path.join(root, `${deadOwnerPrefix('tmp')}-web`);
    const deadTrash = path.join(root, `${deadOwnerPrefix('trash')}-old`);
    const deadLockStage = path.join(root, '.locks', `${deadOwnerPrefix('tmp')}-web.lock`);
    for (const dir of [deadTmp, deadTrash, deadLockStage]) fs.mkdirSync(dir, { recursive: true });
    // A leftover that looks complete must still not become a machine.
    fs.writeFileSync(path.join(deadTmp, 'machine.json'), JSON.stringify({ ...store.get('real'), name: 'web' }));
    const start = processStartTime(process.pid) ?? 'x';
    const liveTmp = path.join(root, `.tmp-${process.pid}-${start}-0123ab-busy`);
    fs.mkdirSync(liveTmp);

    const { machines, skipped } = store.list();
    expect(machines.map((m) => m.name)).toEqual(['real']);
    const reasons = Object.fromEntries(skipped.map((s) => [path.join(root, s.entry), s.reason]));
    expect(reasons).toEqual({ [deadTmp]: 'leftover', [deadTrash]: 'leftover', [liveTmp]: 'in-progress' });
    expect(() => store.get('web')).toThrow(NotFoundError);

    expect(store.sweep().sort()).toEqual([deadLockStage, deadTmp, deadTrash].sort());
    expect(fs.existsSync(liveTmp)).toBe(true);
    expect(store.list().skipped.map((s) => s.reason)).toEqual(['in-progress']);
  });

  it('leaves none behind after a failed create', async () => {
    await store.create({ name: 'vm' });
    await expect(store.create({ name: 'vm' })).rejects.toThrow(ConflictError);
    expect(fs.readdirSync(root).sort()).toEqual(['.locks', 'vm']);
    expect(fs.readdirSync(path.join(root, '.locks'))).toEqual([]);
  });
});
