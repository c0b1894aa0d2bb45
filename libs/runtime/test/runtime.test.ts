import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { NotFoundError } from '@smolvm/common';
import { createRunDir, exitCodeFor, locateKernel, runRoot, sweepRunDirs } from '../src';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-runtime-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('exitCodeFor', () => {
  it.each([
    [{ code: 0, signal: null }, 0],
    [{ code: 3, signal: null }, 3],
    [{ code: null, signal: 'SIGKILL' }, 137],
    [{ code: null, signal: 'SIGTERM' }, 143],
    [{ code: null, signal: 'SIGINT' }, 130],
  ])('%j -> %d', (status, code) => expect(exitCodeFor(status)).toBe(code));
});

describe('locateKernel', () => {
  it('honours SMOLVM_KERNEL and rejects a missing file with a remedy', () => {
    const vmlinux = path.join(tmp, 'vmlinux');
    fs.writeFileSync(vmlinux, 'x');
    expect(locateKernel({ SMOLVM_KERNEL: vmlinux })).toBe(vmlinux);
    expect(() => locateKernel({ SMOLVM_KERNEL: path.join(tmp, 'nope') })).toThrow(
      /SMOLVM_KERNEL points at .*nope, which is not a file/,
    );
  });

  it('reads kernel.json from the cache, and says how to build a kernel when there is none', () => {
    const env = { SMOLVM_HOME: tmp, HOME: tmp, XDG_CACHE_HOME: path.join(tmp, 'xdg') };
    expect(() => locateKernel(env)).toThrow(NotFoundError);
    expect(() => locateKernel(env)).toThrow(/no guest kernel is built/);
    const dir = path.join(tmp, 'cache', 'kernel', 'k1');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'vmlinux'), 'x');
    fs.writeFileSync(
      path.join(tmp, 'cache', 'kernel', 'kernel.json'),
      JSON.stringify({ path: path.join(dir, 'vmlinux') }),
    );
    expect(locateKernel(env)).toBe(path.join(dir, 'vmlinux'));
  });

  it("a single file's own kernel comes after SMOLVM_KERNEL and before the recorded one", () => {
    const env = { SMOLVM_HOME: tmp, HOME: tmp, XDG_CACHE_HOME: path.join(tmp, 'xdg') };
    const shipped = path.join(tmp, 'shipped-vmlinux');
    const override = path.join(tmp, 'override-vmlinux');
    fs.writeFileSync(override, 'x');
    const dir = path.join(tmp, 'cache', 'kernel', 'k1');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'vmlinux'), 'x');
    fs.writeFileSync(
      path.join(tmp, 'cache', 'kernel', 'kernel.json'),
      JSON.stringify({ path: path.join(dir, 'vmlinux') }),
    );
    expect(locateKernel(env, shipped)).toBe(shipped);
    expect(locateKernel({ ...env, SMOLVM_KERNEL: override }, shipped)).toBe(override);
    expect(locateKernel(env)).toBe(path.join(dir, 'vmlinux'));
  });

  // Issue 14, item 7: every VM boots this kernel with the run's volumes and secrets.
  it('ignores a kernel record, or a kernel, that another user could have written or that lies outside the cache', () => {
    const env = { SMOLVM_HOME: tmp, HOME: tmp, XDG_CACHE_HOME: path.join(tmp, 'xdg') };
    const kernelDir = path.join(tmp, 'cache', 'kernel');
    const vmlinux = path.join(kernelDir, 'k1', 'vmlinux');
    fs.mkdirSync(path.dirname(vmlinux), { recursive: true, mode: 0o700 });
    fs.writeFileSync(vmlinux, 'x', { mode: 0o644 });
    const record = path.join(kernelDir, 'kernel.json');
    const write = (kernel: string) => fs.writeFileSync(record, JSON.stringify({ path: kernel }), { mode: 0o644 });
    write(vmlinux);
    expect(locateKernel(env)).toBe(vmlinux);
    const refused = () => expect(() => locateKernel(env)).toThrow(/no guest kernel is built/);
    fs.chmodSync(record, 0o666);
    refused();
    fs.chmodSync(record, 0o644);
    fs.chmodSync(kernelDir, 0o777);
    refused();
    fs.chmodSync(kernelDir, 0o755);
    fs.chmodSync(vmlinux, 0o666);
    refused();
    fs.chmodSync(vmlinux, 0o644);
    const outside = path.join(tmp, 'elsewhere-vmlinux');
    fs.writeFileSync(outside, 'x', { mode: 0o644 });
    write(outside);
    refused();
    write(`${kernelDir}/k1/../k1/vmlinux`);
    refused();
    if (process.getuid?.() === 0) {
      write(vmlinux);
      fs.chownSync(vmlinux, 65534, 65534);
      refused();
    }
  });
});

describe('run dirs', () => {
  it('are private, carry their owner, and are swept once the owner died', async () => {
    const env = { XDG_RUNTIME_DIR: tmp };
    expect(runRoot(env)).toBe(path.join(tmp, 'smolvm'));
    const mine = createRunDir('vm', env);
    expect(fs.statSync(runRoot(env)).mode & 0o777).toBe(0o700);
    expect(JSON.parse(fs.readFileSync(path.join(mine.path, 'owner.json'), 'utf8')).pid).toBe(process.pid);

    const child = spawn(process.execPath, ['-e', '0']);
    const pid = child.pid as number;
    await new Promise((r) => child.on('exit', r));
    const orphan = path.join(runRoot(env), 'vm-orphan');
    fs.mkdirSync(orphan);
    fs.writeFileSync(path.join(orphan, 'owner.json'), JSON.stringify({ pid, startTime: 1 }));
    fs.writeFileSync(path.join(orphan, 'agent.sock'), '');

    expect(sweepRunDirs(runRoot(env))).toEqual([orphan]);
    expect(fs.existsSync(mine.path)).toBe(true);
    mine.remove();
    expect(fs.readdirSync(runRoot(env))).toEqual([]);
  });

  it('refuses a runtime root that others can write to', () => {
    fs.mkdirSync(path.join(tmp, 'smolvm'), { mode: 0o777 });
    fs.chmodSync(path.join(tmp, 'smolvm'), 0o777);
    expect(() => createRunDir('vm', { XDG_RUNTIME_DIR: tmp })).toThrow(/is not a private directory of this user/);
  });
});
