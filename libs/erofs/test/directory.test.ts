import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '@smolvm/common';
import { buildErofsFromDirectory, openErofs, type ErofsEntry } from '../src';
import { expectImageMatches, type ModelInode } from './helpers/model';
import { fsck, listDir, sha256, tempDir } from './helpers/tools';

const isRoot = process.getuid?.() === 0;

describe('buildErofsFromDirectory', () => {
  let work: string;
  let src: string;
  let outDir: string;
  beforeEach(() => {
    work = tempDir();
    src = path.join(work, 'src');
    outDir = path.join(work, 'out');
    fs.mkdirSync(src);
    fs.mkdirSync(outDir);
  });
  afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

  function populate(): void {
    fs.mkdirSync(path.join(src, 'bin'));
    fs.writeFileSync(path.join(src, 'bin/tool'), Buffer.alloc(12345, 4));
    fs.chmodSync(path.join(src, 'bin/tool'), 0o4755);
    fs.linkSync(path.join(src, 'bin/tool'), path.join(src, 'bin/tool-alias'));
    fs.writeFileSync(path.join(src, 'empty'), '');
    fs.writeFileSync(path.join(src, 'block'), Buffer.alloc(4096, 1));
    fs.mkdirSync(path.join(src, 'sticky'), { mode: 0o755 });
    fs.chmodSync(path.join(src, 'sticky'), 0o1777);
    // Links that point out of the tree are stored as links, never followed.
    fs.symlinkSync('/etc/passwd', path.join(src, 'abs-out'));
    fs.symlinkSync('../../../../../../tmp', path.join(src, 'rel-out'));
    fs.symlinkSync(work, path.join(src, 'dir-out'));
    fs.symlinkSync('bin/tool', path.join(src, 'inside'));
    execFileSync('mkfifo', [path.join(src, 'pipe')]);
    if (isRoot) execFileSync('mknod', [path.join(src, 'null'), 'c', '1', '3']);
    fs.utimesSync(path.join(src, 'empty'), 1_000_000_000.5, 1_000_000_000.5);
  }

  /** What the image should hold, from lstat of the host tree (the model of the walk). */
  function expected(owner?: { uid: number; gid: number }): Map<string, ModelInode> {
    const byIno = new Map<string, ModelInode>();
    const out = new Map<string, ModelInode>();
    const visit = (host: string, rel: string): void => {
      const st = fs.lstatSync(host, { bigint: true });
      const key = `${st.ino}`;
      let m = byIno.get(key);
      if (!m) {
        m = {
          type: st.isDirectory()
            ? 'dir'
            : st.isFile()
              ? 'file'
              : st.isSymbolicLink()
                ? 'symlink'
                : st.isFIFO()
                  ? 'fifo'
                  : 'chardev',
          mode: Number(st.mode & 0o7777n),
          uid: owner?.uid ?? Number(st.uid),
          gid: owner?.gid ?? Number(st.gid),
          mtime: Number(st.mtimeNs / 1_000_000_000n),
          mtimeNsec: Number(st.mtimeNs % 1_000_000_000n),
          xattrs: {},
        };
        if (st.isFile()) m.content = fs.readFileSync(host);
        if (st.isSymbolicLink()) m.target = fs.readlinkSync(host);
        if (st.isCharacterDevice()) Object.assign(m, { major: 1, minor: 3 });
        if (st.isDirectory()) m.children = new Map();
        byIno.set(key, m);
      }
      out.set(rel || '/', m);
      if (st.isDirectory()) {
        for (const name of fs.readdirSync(host)) {
          const child = path.join(host, name);
          visit(child, `${rel}/${name}`);
          const c = out.get(`${rel}/${name}`) as ModelInode;
          m.children?.set(name, { inode: c, layer: 0 });
        }
      }
    };
    visit(src, '');
    return out;
  }

  test('stores the tree with lstat fidelity and never follows symlinks', async () => {
    populate();
    const out = path.join(outDir, 'dir.erofs');
    const stats = await buildErofsFromDirectory(src, out);
    expect(stats.hardLinks).toBe(1);
    expectImageMatches(out, expected());
    expect(listDir(outDir)).toEqual(['dir.erofs']);
  });

  test('owner override makes every entry root-owned', async () => {
    populate();
    const out = path.join(outDir, 'root.erofs');
    await buildErofsFromDirectory(src, out, { owner: { uid: 0, gid: 0 } });
    expectImageMatches(out, expected({ uid: 0, gid: 0 }), { extract: false });
  });

  test('agrees with mkfs.erofs on the same tree (an independent writer, read by our reader)', async () => {
    populate();
    fs.mkdirSync(path.join(src, 'many'));
    for (let i = 0; i < 800; i++)
      fs.writeFileSync(path.join(src, 'many', `f${i}-${'z'.repeat(i % 50)}`), `c${i}`.repeat(i));
    const ours = path.join(outDir, 'ours.erofs');
    const theirs = path.join(outDir, 'theirs.erofs');
    await buildErofsFromDirectory(src, ours);
    execFileSync('mkfs.erofs', ['--quiet', '--preserve-mtime', theirs, src]);
    fsck(theirs);
    const summary = (image: string): Array<Record<string, unknown>> => {
      const r = openErofs(image);
      try {
        return r.list().map((e: ErofsEntry) => ({
          path: e.path,
          type: e.type,
          mode: e.mode,
          uid: e.uid,
          gid: e.gid,
          size: e.type === 'dir' ? undefined : e.size,
          nlink: e.nlink,
          mtime: e.mtime,
          sha: e.type === 'file' ? sha256(r.readFile(e)) : undefined,
          target: e.linkTarget?.toString(),
          rdev: e.rdevMajor === undefined ? undefined : [e.rdevMajor, e.rdevMinor],
        }));
      } finally {
        r.close();
      }
    };
    expect(summary(ours)).toEqual(summary(theirs));
  });

  test('rejects an output inside the tree and a missing directory', async () => {
    await expect(buildErofsFromDirectory(src, path.join(src, 'x.erofs'))).rejects.toThrow(UsageError);
    await expect(buildErofsFromDirectory(path.join(work, 'missing'), path.join(outDir, 'x.erofs'))).rejects.toThrow(
      /cannot read directory/,
    );
    fs.writeFileSync(path.join(work, 'file'), 'x');
    await expect(buildErofsFromDirectory(path.join(work, 'file'), path.join(outDir, 'x.erofs'))).rejects.toThrow(
      /is not a directory/,
    );
    expect(listDir(outDir)).toEqual([]);
  });

  test('model check: the expected-tree helper itself notices a difference', async () => {
    populate();
    const out = path.join(outDir, 'diff.erofs');
    await buildErofsFromDirectory(src, out);
    const wrong = expected();
    (wrong.get('/bin/tool') as ModelInode).mode = 0o755;
    expect(() => expectImageMatches(out, wrong, { extract: false })).toThrow();
  });
});
