import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { RegistryClient, RegistryConfig } from '@smolvm/oci';
import { startRegistry, type RegistryFixture } from '../../../tools/fixtures/registry';
import { busyboxBaseImage, pushBuiltImage, type BuiltImage } from '../../../tools/fixtures/images';

export const CLI = path.join(__dirname, '..', 'dist', 'smolvm.js');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI (the test target depends on build) as a user would. */
export function smolvm(args: string[], env: NodeJS.ProcessEnv = {}, input?: string, timeoutMs = 60_000): CliResult {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    input,
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The stdout of a command that must succeed (else its stderr, in the error). */
export function ok(r: CliResult): string {
  if (r.status !== 0) throw new Error(`exit ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** A free loopback port (closed again: a machine binds it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** `STATUS BODY` of a GET of `file` on a loopback port (a guest's server behind -p). */
export async function httpGet(port: number, file: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/${file}`, { signal: AbortSignal.timeout(30_000) });
  return `${res.status} ${(await res.text()).trim()}`;
}

/** The same without blocking this process (tests that serve something the CLI talks to, or kill it). */
export function startSmolvm(args: string[], env: NodeJS.ProcessEnv = {}): { done: Promise<CliResult>; pid: number } {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr })));
  return { done, pid: child.pid as number };
}

export function smolvmAsync(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return startSmolvm(args, env).done;
}

/** A command on a pseudo-terminal, driven by typing into it as a user would. */
export interface PtySession {
  /** Everything the terminal has shown so far. */
  readonly output: string;
  /** The command's exit code (script(1) passes it through). */
  readonly exited: Promise<number | null>;
  /** Types `text` (end a line with "\r", as a terminal does). */
  type(text: string): void;
  /** Waits until the output matches, or fails with what it showed last. */
  waitFor(pattern: RegExp, ms?: number): Promise<void>;
  /** Ends script(1) and what it runs; call in `finally`. */
  kill(): void;
}

/** `argv` as one shell command line (for startPty), each word single-quoted. */
export function shellWords(argv: string[]): string {
  return argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
}

/** Runs the shell command line `cmd` under script(1), which gives it a real terminal (TERM=xterm). */
export function startPty(cmd: string, env: NodeJS.ProcessEnv, waitMs = 150_000): PtySession {
  const child = spawn('script', ['-qfec', cmd, '/dev/null'], {
    env: { ...process.env, ...env, TERM: 'xterm' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  return {
    get output() {
      return output;
    },
    exited,
    type: (text) => child.stdin.write(text),
    async waitFor(pattern, ms = waitMs) {
      const end = Date.now() + ms;
      while (!pattern.test(output)) {
        if (Date.now() > end)
          throw new Error(`timed out waiting for ${pattern}; output so far: ${JSON.stringify(output.slice(-500))}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    kill: () => child.kill('SIGKILL'),
  };
}

export interface E2eSetup {
  /** SMOLVM_HOME of this test file. */
  home: string;
  /** XDG_RUNTIME_DIR: every run dir and socket of this file's VMs is under it. */
  runtimeDir: string;
  env: NodeJS.ProcessEnv;
  /** Pushed references, by the repository:tag given. */
  refs: Record<string, string>;
  /** QEMU processes (not zombies) started by this file. */
  qemus(): string[];
  close(): Promise<void>;
}

/** The busybox base image e2e files run bare VMs on unless they ask for the Debian base. */
export const BUSYBOX_BASE = 'smolvm-test/busybox-base:1';

/**
 * For e2e files with a home of their own: a local registry serving the busybox base, and the
 * environment that makes bare VMs run on it (pulled once into the file's store).
 */
export async function startBusyboxBase(): Promise<{ env: NodeJS.ProcessEnv; stop(): Promise<void> }> {
  const registry = await startRegistry({ auth: 'none' });
  const client = new RegistryClient({ config: RegistryConfig.fromSettings({}) });
  try {
    const { reference } = await pushBuiltImage(client, `${registry.host}/${BUSYBOX_BASE}`, busyboxBaseImage());
    return { env: { SMOLVM_BASE_IMAGE: reference }, stop: () => registry.stop() };
  } catch (err) {
    await registry.stop();
    throw err;
  } finally {
    await client.close();
  }
}

/**
 * A private home and runtime dir for one e2e file, and a local registry (loopback) with the
 * given images pushed: `{ 'smolvm-test/feature:latest': featureImage() }`. Bare VMs run on a
 * busybox base image (SMOLVM_BASE_IMAGE; the scripts of most tests use busybox applets), or with
 * `base: 'debian'` on the Debian base tools/setup built, as users' bare VMs do.
 */
export async function e2eSetup(
  prefix: string,
  images: Record<string, BuiltImage> = {},
  options: { base?: 'busybox' | 'debian' } = {},
): Promise<E2eSetup> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const runtimeDir = path.join(home, 'run');
  fs.mkdirSync(runtimeDir, { mode: 0o700 });
  if ((options.base ?? 'busybox') === 'busybox') images = { ...images, [BUSYBOX_BASE]: busyboxBaseImage() };
  const registry: RegistryFixture | undefined =
    Object.keys(images).length > 0 ? await startRegistry({ auth: 'none' }) : undefined;
  const refs: Record<string, string> = {};
  if (registry) {
    const client = new RegistryClient({ config: RegistryConfig.fromSettings({}) });
    try {
      for (const [name, image] of Object.entries(images))
        refs[name] = (await pushBuiltImage(client, `${registry.host}/${name}`, image)).reference;
    } finally {
      await client.close();
    }
  }
  return {
    home,
    runtimeDir,
    env: {
      SMOLVM_HOME: home,
      XDG_RUNTIME_DIR: runtimeDir,
      SMOLVM_NO_TCG_WARNING: '1',
      ...(refs[BUSYBOX_BASE] ? { SMOLVM_BASE_IMAGE: refs[BUSYBOX_BASE] } : {}),
    },
    refs,
    qemus: () => {
      const rows = spawnSync('ps', ['-eo', 'pid,ppid,stat,args'], { encoding: 'utf8' })
        .stdout.split('\n')
        .filter((l) => l.includes('qemu-system') && l.includes(home) && !/^\s*\d+\s+\d+\s+Z/.test(l))
        .map((l) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l) as RegExpExecArray);
      // A QEMU's own child (a fork that has not exec'd yet) is part of that QEMU, not another VM.
      const pids = new Set(rows.map((r) => r[1]));
      return rows.filter((r) => !pids.has(r[2])).map((r) => `${r[1]} ${r[3]}`);
    },
    async close() {
      await registry?.stop();
      fs.rmSync(home, { recursive: true, force: true });
    },
  };
}
