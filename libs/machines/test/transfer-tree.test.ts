// The host side of a directory download faces a tar stream the (untrusted) guest produced. These
// feed extractGuestTree hostile archives directly, without a VM.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { tarEntries, type TarEntry } from '../../../tools/fixtures/tar';
import { extractGuestTree, type TreeLimits } from '../src/transfer';

let dir: string;
let outside: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-cptree-'));
  outside = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-outside-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(outside, { recursive: true, force: true });
});

type Tree = { data: Readable; done: Promise<unknown> };

function guestSending(entries: TarEntry[]): Tree {
  const archive = tarEntries(entries);
  return { data: Readable.from([archive]), done: Promise.resolve({ bytes: archive.length }) };
}

const downloadTree = (tree: Tree, target: string, limits?: TreeLimits) =>
  extractGuestTree(tree, 'proj', target, { what: 'dev:/workspace/proj', ...(limits ? { limits } : {}) });

it('puts a well-formed tree in place, without special bits or devices', async () => {
  await downloadTree(
    guestSending([
      { path: 'proj/', type: 'dir' },
      { path: 'proj/a.txt', type: 'file', content: 'a\n' },
      { path: 'proj/suid', type: 'file', mode: 0o4755, content: 'x' },
      { path: 'proj/dev', type: 'char', devmajor: 1, devminor: 3 },
      { path: 'proj/link', type: 'symlink', linkname: 'a.txt' },
    ]),
    path.join(dir, 'out'),
  );
  expect(fs.readFileSync(path.join(dir, 'out', 'a.txt'), 'utf8')).toBe('a\n');
  expect(fs.statSync(path.join(dir, 'out', 'suid')).mode & 0o7777).toBe(0o755);
  expect(fs.existsSync(path.join(dir, 'out', 'dev'))).toBe(false);
  expect(fs.readlinkSync(path.join(dir, 'out', 'link'))).toBe('a.txt');
  expect(fs.readdirSync(dir)).toEqual(['out']);
});

it.each<[string, TarEntry[]]>([
  [
    'a path with ..',
    [
      { path: 'proj/', type: 'dir' },
      { path: `proj/../../${path.basename(os.tmpdir())}/evil`, type: 'file', content: 'x' },
    ],
  ],
  [
    'a write through a symlink pointing outside',
    [
      { path: 'proj/', type: 'dir' },
      { path: 'proj/out', type: 'symlink', linkname: '' },
      { path: 'proj/out/evil', type: 'file', content: 'x' },
    ],
  ],
  [
    'a second top-level entry',
    [
      { path: 'proj/', type: 'dir' },
      { path: 'other', type: 'file', content: 'x' },
    ],
  ],
  ['a file where the directory should be', [{ path: 'proj', type: 'file', content: 'x' }]],
])('refuses %s, writes nothing outside and leaves nothing behind', async (_what, entries) => {
  for (const e of entries) if (e.type === 'symlink' && e.linkname === '') e.linkname = outside;
  await expect(downloadTree(guestSending(entries), path.join(dir, 'out'))).rejects.toThrow();
  expect(fs.readdirSync(dir)).toEqual([]);
  expect(fs.readdirSync(outside)).toEqual([]);
  expect(fs.existsSync(path.join(os.tmpdir(), 'evil'))).toBe(false);
});

it('refuses an existing destination without reading what the machine sends or touching it', async () => {
  fs.mkdirSync(path.join(dir, 'proj'));
  fs.writeFileSync(path.join(dir, 'proj', 'mine'), 'kept');
  const tree = guestSending([
    { path: 'proj/', type: 'dir' },
    { path: 'proj/mine', type: 'file', content: 'theirs' },
  ]);
  await expect(downloadTree(tree, path.join(dir, 'proj'))).rejects.toThrow(`${path.join(dir, 'proj')} already exists`);
  expect(tree.data.readableFlowing).toBeNull();
  expect(fs.readFileSync(path.join(dir, 'proj', 'mine'), 'utf8')).toBe('kept');
  expect(fs.readdirSync(dir)).toEqual(['proj']);
});

/**
 * A guest that ignores the byte cap it was asked for: entries made by `entry(i)` until `until`
 * bytes, far past any cap under test. Counts what the host pulled from it.
 */
function guestStreamingForever(entry: (i: number) => TarEntry, until: number): { tree: Tree; pulled: () => number } {
  let pulled = 0;
  async function* stream(): AsyncGenerator<Buffer> {
    const top = tarEntries([{ path: 'proj/', type: 'dir' }]);
    yield top.subarray(0, top.length - 1024);
    for (let i = 0; pulled < until; i++) {
      const one = tarEntries([entry(i)]);
      pulled += one.length - 1024;
      yield one.subarray(0, one.length - 1024);
    }
  }
  const data = Readable.from(stream());
  const done = new Promise((resolve) => data.on('close', () => resolve({ bytes: pulled })));
  return { tree: { data, done }, pulled: () => pulled };
}

const limits = { maxBytes: 8 * 1024 * 1024, maxEntries: 500 };

it('stops a guest that streams past the byte cap, with a clear error, leaving nothing behind', async () => {
  const guest = guestStreamingForever(
    (i) => ({ path: `proj/f${i}`, type: 'file', content: Buffer.alloc(1024 * 1024, 0x61) }),
    64 * 1024 * 1024,
  );
  const copy = downloadTree(guest.tree, path.join(dir, 'out'), limits);
  await expect(copy).rejects.toThrow(`the machine sent more than the per-transfer cap of ${limits.maxBytes} bytes`);
  expect(guest.pulled()).toBeLessThan(limits.maxBytes + 4 * 1024 * 1024);
  expect(fs.readdirSync(dir)).toEqual([]);
}, 60_000);

it('stops a guest that streams past the entry bound, with a clear error, leaving nothing behind', async () => {
  const guest = guestStreamingForever((i) => ({ path: `proj/e${i}`, type: 'file', content: '' }), 16 * 1024 * 1024);
  const copy = downloadTree(guest.tree, path.join(dir, 'out'), limits);
  await expect(copy).rejects.toThrow(`the machine sent more than ${limits.maxEntries} entries`);
  expect(guest.pulled()).toBeLessThan(2 * limits.maxEntries * 512 + 4 * 1024 * 1024);
  expect(fs.readdirSync(dir)).toEqual([]);
}, 60_000);
