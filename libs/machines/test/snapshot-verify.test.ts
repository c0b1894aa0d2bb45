// verify()'s memo: a snapshot's small files are hashed once (when it is made), not again by every
// fork of it, yet any change to them is still caught.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
// Mocked below (jest.mock is hoisted above the imports): sha256File counts the files hashed.
import { sha256File } from '@smolvm/common';
import { SnapshotDamagedError, SnapshotStore, type SnapshotMeta } from '../src/snapshot-store';

jest.mock('@smolvm/common', () => {
  const actual = jest.requireActual<typeof import('@smolvm/common')>('@smolvm/common');
  return { ...actual, sha256File: jest.fn(actual.sha256File) };
});

const hashes = sha256File as jest.MockedFunction<typeof sha256File>;
let root: string;
let store: SnapshotStore;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-snapverify-'));
  store = new SnapshotStore(path.join(root, 'snapshots'));
  hashes.mockClear();
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

/** A snapshot of a running machine as the supervisor leaves it (tiny files). */
function makeSnapshot(tag: string, state = 'device state'): string {
  const id = `src:${tag}`;
  const staging = store.beginStaging(`src.${tag}`);
  fs.mkdirSync(path.join(staging, 'vm'));
  fs.writeFileSync(path.join(staging, 'vm', 'memory'), Buffer.alloc(4096));
  fs.writeFileSync(path.join(staging, 'vm', 'state'), state);
  fs.writeFileSync(path.join(staging, 'vm', 'qemu.json'), '{}');
  fs.writeFileSync(path.join(staging, 'overlay.ext4'), 'o');
  fs.writeFileSync(path.join(staging, 'storage.ext4'), 's');
  store.commit(staging, {
    id,
    machine: 'src',
    tag,
    createdAt: new Date().toISOString(),
    running: true,
    source: {} as SnapshotMeta['source'],
    nic: false,
  });
  return id;
}

function memo(id: string): string {
  const [machine, tag] = id.split(':');
  return path.join(store.root, '.verified', machine, `${tag}.json`);
}

/** Rewrites a read-only file of the snapshot, same size, its mtime put back. */
function tamper(id: string, rel: string, content: string): void {
  const file = path.join(store.dir(id), rel);
  const st = fs.statSync(file);
  fs.chmodSync(file, 0o600);
  fs.writeFileSync(file, content);
  fs.chmodSync(file, 0o400);
  fs.utimesSync(file, st.atime, st.mtime);
}

describe('SnapshotStore.verify', () => {
  it('hashes nothing for a snapshot it made, however many forks verify it', () => {
    const id = makeSnapshot('1');
    expect(hashes).toHaveBeenCalledTimes(2); // state and qemu.json, once, at commit
    hashes.mockClear();
    for (let i = 0; i < 3; i++) expect(store.verify(id).id).toBe(id);
    expect(hashes).not.toHaveBeenCalled();
    // Owner-only like the rest of the store, and never listed as a snapshot.
    expect(fs.statSync(memo(id)).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(memo(id))).mode & 0o777).toBe(0o700);
    expect(store.readAll().snapshots.map((s) => s.id)).toEqual([id]);
  });

  it('still catches a small file rewritten in place (same size, mtime put back)', () => {
    const id = makeSnapshot('1', 'device state');
    tamper(id, 'vm/state', 'DEVICE STATE');
    expect(() => store.verify(id)).toThrow(SnapshotDamagedError);
    expect(() => store.verify(id)).toThrow('snapshot "src:1" is damaged: vm/state was altered (sha256 differs)');
    // Put right again (new identity): hashed once more, then remembered.
    tamper(id, 'vm/state', 'device state');
    hashes.mockClear();
    store.verify(id);
    expect(hashes).toHaveBeenCalledTimes(1);
    store.verify(id);
    expect(hashes).toHaveBeenCalledTimes(1);
  });

  it('hashes again when the memo is missing, garbage or names another hash, and never trusts it over the files', () => {
    const id = makeSnapshot('1');
    for (const content of [undefined, 'not json', '[]', '{"vm/state": {"identity": "x", "sha256": "y"}}']) {
      if (content === undefined) fs.rmSync(memo(id));
      else fs.writeFileSync(memo(id), content);
      hashes.mockClear();
      store.verify(id);
      expect(hashes).toHaveBeenCalledTimes(2);
    }
    // A memo claiming the right identity for a hash the snapshot does not list is not a pass.
    const listed = JSON.parse(fs.readFileSync(memo(id), 'utf8')) as Record<string, { sha256: string }>;
    listed['vm/state'].sha256 = '0'.repeat(64);
    fs.writeFileSync(memo(id), JSON.stringify(listed));
    hashes.mockClear();
    store.verify(id);
    expect(hashes).toHaveBeenCalledTimes(1);
  });

  it('goes with its snapshot: a new snapshot of the same id is hashed on its own', () => {
    const id = makeSnapshot('1', 'first');
    store.remove(id);
    expect(fs.existsSync(memo(id))).toBe(false);
    makeSnapshot('1', 'other');
    hashes.mockClear();
    expect(store.verify(id).id).toBe(id);
    expect(hashes).not.toHaveBeenCalled();
    tamper(id, 'vm/state', 'first');
    expect(() => store.verify(id)).toThrow(SnapshotDamagedError);
  });
});
