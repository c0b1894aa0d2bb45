// Issue 14, item 7: machine records hold `-e` secrets and decide what a start shares with the
// guest, forwards and runs, and which pid `stop` kills. No other local user may read them, and a
// record another user could have written or replaced is not used.
import fs from 'node:fs';
import path from 'node:path';
import { MachineRecordError, MachineStore } from '../src';
import { tempDir } from './helpers';

const ATTACKER = 65534;
const asRoot = process.getuid?.() === 0;
const rootOnly = asRoot ? it : it.skip;
if (!asRoot)
  console.warn('adversarial-localusers: not root, so the tests that need files of another user (chown) are skipped');

let base: string;
let root: string;
let store: MachineStore;

beforeEach(() => {
  base = tempDir('localusers');
  // The store's parents do not exist yet: they are made by the store.
  root = path.join(base, 'home', 'data', 'machines');
  store = new MachineStore({ root, lockTimeoutMs: 2_000 });
});
afterEach(() => fs.rmSync(base, { recursive: true, force: true }));

/** Octal, so a failure reads like ls -l. */
const mode = (p: string) => (fs.statSync(p).mode & 0o777).toString(8);

describe('machine state is private whatever the umask', () => {
  let saved: number;
  beforeEach(() => (saved = process.umask(0)));
  afterEach(() => process.umask(saved));

  it('records 0600, every directory 0700, lock files too, after create and update', async () => {
    await store.create({ name: 'web', env: ['API_TOKEN=s3cret'] });
    const modes = () => ({
      home: mode(path.join(base, 'home')),
      data: mode(path.dirname(root)),
      root: mode(root),
      machine: mode(store.machineDir('web')),
      record: mode(store.recordPath('web')),
      locks: mode(path.join(root, '.locks')),
    });
    const privateModes = { home: '700', data: '700', root: '700', machine: '700', record: '600', locks: '700' };
    expect(modes()).toEqual(privateModes);
    await store.withMachineLock('web', (lock) => {
      expect(mode(lock.path)).toBe('700');
      for (const f of fs.readdirSync(lock.path)) expect(mode(path.join(lock.path, f))).toBe('600');
    });
    await store.update('web', (r) => ({ ...r, env: ['API_TOKEN=rotated'] }));
    expect(modes()).toEqual(privateModes);
  });
});

describe('a record another user could have written is refused', () => {
  beforeEach(async () => {
    await store.create({ name: 'web' });
  });

  rootOnly('a machine.json of another user', () => {
    fs.chownSync(store.recordPath('web'), ATTACKER, ATTACKER);
    expect(() => store.get('web')).toThrow(MachineRecordError);
    expect(() => store.get('web')).toThrow(/belongs to uid 65534/);
    expect(store.list().machines).toEqual([]);
  });

  rootOnly('a machine directory of another user', () => {
    fs.chownSync(store.machineDir('web'), ATTACKER, ATTACKER);
    expect(() => store.get('web')).toThrow(/belongs to uid 65534/);
  });

  it('a machine.json others can write', () => {
    fs.chmodSync(store.recordPath('web'), 0o666);
    expect(() => store.get('web')).toThrow(/writable by its group and other users/);
  });

  it('a machine directory others can write', () => {
    fs.chmodSync(store.machineDir('web'), 0o777);
    expect(() => store.get('web')).toThrow(/writable by its group and other users/);
  });

  it('a machine.json that is a symlink', () => {
    const elsewhere = path.join(base, 'elsewhere.json');
    fs.renameSync(store.recordPath('web'), elsewhere);
    fs.symlinkSync(elsewhere, store.recordPath('web'));
    expect(() => store.get('web')).toThrow(/symbolic link/);
  });

  it('create refuses a store another user could replace (its parent writable by others, no sticky bit)', async () => {
    fs.chmodSync(path.join(base, 'home'), 0o777);
    await expect(store.create({ name: 'api', env: ['API_TOKEN=s3cret'] })).rejects.toThrow(
      /home: it is writable by others without the sticky bit \(mode 777\)/,
    );
    expect(fs.existsSync(store.machineDir('api'))).toBe(false);
  });

  it('an update refuses it too, and leaves it alone', async () => {
    fs.chmodSync(store.recordPath('web'), 0o666);
    await expect(store.update('web', (r) => ({ ...r, cpus: 2 }))).rejects.toThrow(
      /writable by its group and other users/,
    );
    expect(mode(store.recordPath('web'))).toBe('666');
  });
});
