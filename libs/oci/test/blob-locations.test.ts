// Mount hints: per registry, newest wins, bounded, and a damaged or foreign file is no hint at all.
import fs from 'node:fs';
import path from 'node:path';
import { BlobLocations, ContentStore, MAX_BLOB_LOCATIONS, sha256Digest } from '../src';
import { tempHome, type TempHome } from './helpers/env';

let home: TempHome;
let store: ContentStore;
beforeEach(() => {
  home = tempHome();
  store = ContentStore.open(home.env);
});
afterEach(() => home.cleanup());

const d = (n: number): string => sha256Digest(String(n));

it('remembers the last repository per blob and registry, in an owner-only file', () => {
  const locations = new BlobLocations(store);
  expect(locations.find('reg.example', d(1))).toBeUndefined();
  locations.remember('reg.example', 'team/a', [d(1), d(2)]);
  locations.remember('reg.example', 'team/b', [d(2)]);
  locations.remember('other.example', 'x/y', [d(1)]);
  const again = new BlobLocations(store);
  expect(again.find('reg.example', d(1))).toBe('team/a');
  expect(again.find('reg.example', d(2))).toBe('team/b');
  expect(again.find('other.example', d(1))).toBe('x/y');
  const dir = path.join(store.root, 'locations');
  expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
  for (const f of fs.readdirSync(dir)) expect(fs.statSync(path.join(dir, f)).mode & 0o777).toBe(0o600);
});

it('keeps at most MAX_BLOB_LOCATIONS per registry, dropping the oldest', () => {
  const locations = new BlobLocations(store);
  locations.remember('reg.example', 'old/repo', [d(0)]);
  locations.remember(
    'reg.example',
    'new/repo',
    Array.from({ length: MAX_BLOB_LOCATIONS }, (_, i) => d(i + 1)),
  );
  expect(locations.find('reg.example', d(0))).toBeUndefined();
  expect(locations.find('reg.example', d(MAX_BLOB_LOCATIONS))).toBe('new/repo');
});

it('ignores a damaged file and entries that are no digests', () => {
  const locations = new BlobLocations(store);
  locations.remember('reg.example', 'team/a', [d(1)]);
  const dir = path.join(store.root, 'locations');
  const file = path.join(dir, fs.readdirSync(dir)[0]);
  fs.writeFileSync(
    file,
    JSON.stringify({ registry: 'reg.example', blobs: { 'not-a-digest': 'x', [d(2)]: 7, [d(3)]: 'ok/repo' } }),
  );
  expect(locations.find('reg.example', 'not-a-digest')).toBeUndefined();
  expect(locations.find('reg.example', d(2))).toBeUndefined();
  expect(locations.find('reg.example', d(3))).toBe('ok/repo');
  fs.writeFileSync(file, '{ broken');
  expect(locations.find('reg.example', d(3))).toBeUndefined();
  // A file written for another registry (a hash collision or a copy) is not believed.
  fs.writeFileSync(file, JSON.stringify({ registry: 'evil.example', blobs: { [d(3)]: 'ok/repo' } }));
  expect(locations.find('reg.example', d(3))).toBeUndefined();
  locations.remember('reg.example', 'team/c', [d(4)]);
  expect(locations.find('reg.example', d(4))).toBe('team/c');
});
