import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import {
  ConfigError,
  ExitCode,
  NotFoundError,
  UsageError,
  currentProcessIdentity,
  exitCodeOf,
  formatError,
  isProcessAlive,
  withTimeout,
  delay,
  processStartTime,
  smolvmDirs,
  writeFileAtomic,
  writeJsonAtomic,
} from '../src';

describe('errors', () => {
  it('formats message and remedy as one line', () => {
    const err = new NotFoundError('machine "web" does not exist', { remedy: 'list machines with `smolvm machine ls`' });
    expect(formatError(err)).toBe('error: machine "web" does not exist; list machines with `smolvm machine ls`');
    expect(formatError(err)).not.toContain('\n');
    expect(exitCodeOf(err)).toBe(ExitCode.Runtime);
  });

  it('usage and config errors exit 2; config errors carry file:line and key path', () => {
    const err = new ConfigError('expected an integer, got a string', { file: 'Smolfile', line: 3, keyPath: 'cpus' });
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toBe("Smolfile:3: 'cpus': expected an integer, got a string");
    expect(exitCodeOf(err)).toBe(ExitCode.Usage);
    expect(exitCodeOf(new Error('x'))).toBe(ExitCode.Runtime);
    expect(formatError('plain')).toBe('error: plain');
  });
});

describe('dirs', () => {
  it('puts everything under SMOLVM_HOME when set', () => {
    expect(smolvmDirs({ SMOLVM_HOME: '/x/home' })).toEqual({
      data: '/x/home/data',
      cache: '/x/home/cache',
      config: '/x/home/config',
    });
  });
  it('follows XDG and ignores relative XDG values', () => {
    const dirs = smolvmDirs({ XDG_DATA_HOME: '/d', XDG_CACHE_HOME: 'relative', XDG_CONFIG_HOME: '/c' });
    expect(dirs.data).toBe('/d/smolvm');
    expect(dirs.cache).toBe(path.join(os.homedir(), '.cache/smolvm'));
    expect(dirs.config).toBe('/c/smolvm');
  });
});

describe('writeFileAtomic', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-common-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('replaces the file and leaves no temp files behind', () => {
    const target = path.join(dir, 'record.json');
    writeJsonAtomic(target, { a: 1 });
    writeJsonAtomic(target, { a: 2 }, 0o600);
    expect(JSON.parse(fs.readFileSync(target, 'utf8'))).toEqual({ a: 2 });
    expect(fs.statSync(target).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(dir)).toEqual(['record.json']);
  });

  it('keeps the old file when the write fails', () => {
    const target = path.join(dir, 'f');
    writeFileAtomic(target, 'old');
    expect(() => writeFileAtomic(path.join(dir, 'missing-dir', 'f'), 'x')).toThrow();
    fs.mkdirSync(path.join(dir, 'asdir'));
    expect(() => writeFileAtomic(path.join(dir, 'asdir'), 'new')).toThrow();
    expect(fs.readFileSync(target, 'utf8')).toBe('old');
    expect(fs.readdirSync(dir).sort()).toEqual(['asdir', 'f']);
  });
});

describe('process identity', () => {
  it('recognises this process and rejects a wrong start time', () => {
    const me = currentProcessIdentity();
    expect(me.startTime).toEqual(expect.any(Number));
    expect(isProcessAlive(me)).toBe(true);
    expect(isProcessAlive({ pid: me.pid, startTime: (me.startTime as number) + 1 })).toBe(false);
  });

  it('reports a dead process as dead', async () => {
    const child = spawn(process.execPath, ['-e', '0']);
    const pid = child.pid as number;
    const start = processStartTime(pid);
    await new Promise((resolve) => child.on('exit', resolve));
    expect(isProcessAlive({ pid, startTime: start })).toBe(false);
  });

  it('reports a zombie (ended, not yet collected by its parent) as dead', async () => {
    // The shell becomes `sleep 5` (which never reaps) well before its child `sleep 0.3` ends.
    const parent = spawn('sh', ['-c', 'sleep 0.3 & echo $!; exec sleep 5']);
    try {
      const pid = Number(
        await new Promise<string>((resolve) => parent.stdout.once('data', (d: Buffer) => resolve(d.toString()))),
      );
      const start = processStartTime(pid);
      for (let i = 0; i < 100 && !fs.readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '); i++)
        await new Promise((r) => setTimeout(r, 20));
      expect(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')).toContain(') Z ');
      expect(isProcessAlive({ pid, startTime: start })).toBe(false);
      expect(isProcessAlive({ pid, startTime: null })).toBe(false);
    } finally {
      parent.kill('SIGKILL');
    }
  });
});

describe('withTimeout', () => {
  it('passes a result through and rejects with what timed out', async () => {
    await expect(withTimeout(Promise.resolve(3), 1000, 'x')).resolves.toBe(3);
    await expect(withTimeout(new Promise(() => undefined), 20, 'the agent ping')).rejects.toThrow(
      'the agent ping timed out after 0.02 s',
    );
  });
});

describe('delay', () => {
  it('resolves after the time, or at once when its signal aborts', async () => {
    const order: string[] = [];
    await Promise.all([delay(30).then(() => order.push('slow')), delay(1).then(() => order.push('fast'))]);
    expect(order).toEqual(['fast', 'slow']);
    const aborted = new AbortController();
    aborted.abort();
    await expect(delay(60_000, { signal: aborted.signal })).resolves.toBeUndefined();
    const later = new AbortController();
    const waiting = delay(60_000, { signal: later.signal, unref: true });
    later.abort();
    await expect(waiting).resolves.toBeUndefined();
  });
});
