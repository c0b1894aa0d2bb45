// ensurePrivateDir and assertTrustedPath (src/private-files.ts): state dirs are 0700 under any
// umask, and a file is trusted only if no other user can have written or replaced it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UntrustedPathError, assertTrustedPath, ensurePrivateDir, formatError, writeFileAtomic } from '../src';

const OTHER = 65534;
const asRoot = process.getuid?.() === 0;
const rootOnly = asRoot ? it : it.skip;

let tmp: string;
let root: string;
let file: string;

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-private-'));
  root = path.join(tmp, 'state');
  file = path.join(root, 'a', 'b', 'file.json');
  ensurePrivateDir(path.dirname(file));
  writeFileAtomic(file, '{}\n');
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const mode = (p: string) => (fs.statSync(p).mode & 0o777).toString(8);
const why = (f = file, r = root) => {
  try {
    assertTrustedPath(f, r);
    return 'trusted';
  } catch (err) {
    if (!(err instanceof UntrustedPathError)) throw err;
    return err.message;
  }
};

describe('ensurePrivateDir', () => {
  it('makes every missing directory 0700 even with umask 000, and tightens an own one that others can enter', () => {
    const saved = process.umask(0);
    try {
      const deep = path.join(tmp, 'x', 'y', 'z');
      ensurePrivateDir(deep);
      expect([mode(path.join(tmp, 'x')), mode(path.join(tmp, 'x', 'y')), mode(deep)]).toEqual(['700', '700', '700']);
      fs.chmodSync(deep, 0o755);
      ensurePrivateDir(deep);
      expect(mode(deep)).toBe('700');
    } finally {
      process.umask(saved);
    }
  });

  it('files written atomically are 0600 unless asked otherwise, whatever the umask', () => {
    const saved = process.umask(0);
    try {
      writeFileAtomic(path.join(root, 'new'), 'x');
      expect(mode(path.join(root, 'new'))).toBe('600');
    } finally {
      process.umask(saved);
    }
  });

  rootOnly("refuses another user's directory, and a symlink another user made", () => {
    const theirs = path.join(tmp, 'theirs');
    fs.mkdirSync(theirs);
    fs.chownSync(theirs, OTHER, OTHER);
    expect(() => ensurePrivateDir(theirs)).toThrow(/belongs to uid 65534/);
    const link = path.join(tmp, 'link');
    fs.symlinkSync(root, link);
    fs.lchownSync(link, OTHER, OTHER);
    expect(() => ensurePrivateDir(link)).toThrow(/symbolic link of uid 65534/);
  });

  it('follows an own symlink to an own directory (a state dir moved to another disk)', () => {
    const link = path.join(tmp, 'moved');
    fs.symlinkSync(root, link);
    expect(() => ensurePrivateDir(link)).not.toThrow();
  });
});

describe('assertTrustedPath', () => {
  it('trusts an own file in own private directories, with root and / above them', () => {
    expect(why()).toBe('trusted');
    expect(() => assertTrustedPath(root, root, 'dir')).not.toThrow();
  });

  it('refuses a group- or other-writable file or directory anywhere from the root down', () => {
    fs.chmodSync(file, 0o620);
    expect(why()).toBe(`refusing ${file}: it is writable by its group (mode 620)`);
    fs.chmodSync(file, 0o600);
    fs.chmodSync(path.join(root, 'a'), 0o757);
    expect(why()).toBe(`refusing ${path.join(root, 'a')}: it is writable by other users (mode 757)`);
    fs.chmodSync(path.join(root, 'a'), 0o700);
    fs.chmodSync(root, 0o770);
    expect(why()).toMatch(/^refusing .*state: it is writable by its group/);
  });

  rootOnly('refuses a file or a directory of another user', () => {
    fs.chownSync(file, OTHER, OTHER);
    expect(why()).toBe(`refusing ${file}: it belongs to uid 65534`);
    fs.chownSync(file, 0, 0);
    fs.chownSync(path.join(root, 'a', 'b'), OTHER, OTHER);
    expect(why()).toBe(`refusing ${path.join(root, 'a', 'b')}: it belongs to uid 65534`);
  });

  rootOnly(
    'refuses a root whose parent another user can replace it in (no sticky bit), but not in a sticky one like /tmp',
    () => {
      fs.chmodSync(tmp, 0o777);
      expect(why()).toMatch(/^refusing .*: it is writable by others without the sticky bit \(mode 777\)/);
      fs.chmodSync(tmp, 0o1777);
      expect(why()).toBe('trusted');
      fs.chmodSync(tmp, 0o700);
      fs.chownSync(tmp, OTHER, OTHER);
      expect(why()).toMatch(/belongs to uid 65534/);
    },
  );

  it('refuses symlinks below the root: the file, or a directory on the way', () => {
    const real = path.join(tmp, 'real.json');
    fs.writeFileSync(real, '{}', { mode: 0o600 });
    fs.rmSync(file);
    fs.symlinkSync(real, file);
    expect(why()).toBe(`refusing ${file}: it is a symbolic link`);
    fs.rmSync(file);
    fs.renameSync(path.join(root, 'a', 'b'), path.join(tmp, 'b'));
    fs.symlinkSync(path.join(tmp, 'b'), path.join(root, 'a', 'b'));
    fs.writeFileSync(path.join(tmp, 'b', 'file.json'), '{}', { mode: 0o600 });
    expect(why()).toBe(`refusing ${path.join(root, 'a', 'b')}: it is a symbolic link`);
  });

  it('refuses `..`, relative paths, paths outside the root and what is not a regular file', () => {
    expect(why(`${root}/a/../a/b/file.json`)).toMatch(/is not a normalised path/);
    expect(why('a/b/file.json')).toMatch(/is not an absolute path/);
    expect(why(path.join(tmp, 'elsewhere'))).toMatch(/is outside/);
    expect(() => assertTrustedPath(path.join(root, 'a'), root)).toThrow(
      expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/is not a regular file/) }),
    );
    expect(() => assertTrustedPath(path.join(file, 'x'), root)).toThrow(expect.objectContaining({ code: 'ENOTDIR' }));
    expect(() => assertTrustedPath(path.join(root, 'missing'), root)).toThrow(/ENOENT/);
  });

  it('is one line with a remedy', () => {
    fs.chmodSync(file, 0o666);
    let err: unknown;
    try {
      assertTrustedPath(file, root);
    } catch (e) {
      err = e;
    }
    expect(formatError(err)).toMatch(
      /^error: refusing .*file\.json: it is writable by its group and other users \(mode 666\); remove it, or make it/,
    );
  });
});
