// Test helpers: child processes that use the library for real, bundled from TypeScript with
// esbuild so they run without ts-node and see the same sources as the tests.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';

const LIB = path.resolve(__dirname, '..');

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `smolvm-ms-${prefix}-`));
}

/** Bundles a fixture entry (test/fixtures/NAME.ts) into `outDir`, returns the .js path. */
export function bundleFixture(name: string, outDir: string): string {
  const outfile = path.join(outDir, `${name}.js`);
  const options = {
    entryPoints: [path.join(LIB, 'test', 'fixtures', `${name}.ts`)],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    outfile,
    tsconfig: path.join(LIB, 'tsconfig.json'),
    logLevel: 'error',
  };
  // Run in a plain node process: esbuild's sanity checks trip over jest's module sandbox.
  execFileSync(process.execPath, ['-e', `require('esbuild').buildSync(${JSON.stringify(options)})`], {
    cwd: LIB,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return outfile;
}

export interface Child {
  proc: ChildProcess;
  lines: string[];
  /** Resolves with the first stdout line matching `re`. */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  stderr(): string;
}

export function startChild(script: string, args: string[]): Child {
  const proc = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let partial = '';
  let err = '';
  const waiters: Array<() => void> = [];
  proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    partial += chunk;
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
    for (const w of waiters.splice(0)) w();
  });
  proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk;
  });
  const exited = new Promise<number | string>((resolve) => {
    proc.on('exit', (code, signal) => {
      for (const w of waiters.splice(0)) w();
      resolve(code ?? signal ?? 'unknown');
    });
  });
  const waitForLine = (re: RegExp, timeoutMs = 10_000): Promise<string> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}; stderr: ${err}`)), timeoutMs);
      const check = (): void => {
        const hit = lines.find((l) => re.test(l));
        if (hit !== undefined) {
          clearTimeout(timer);
          resolve(hit);
        } else if (proc.exitCode !== null || proc.signalCode !== null) {
          clearTimeout(timer);
          reject(new Error(`child exited before printing ${re}; stderr: ${err}`));
        } else {
          waiters.push(check);
        }
      };
      check();
    });
  return { proc, lines, waitForLine, exited, stderr: () => err };
}
