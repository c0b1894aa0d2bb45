// Directories for `machine cp`, as tar streams handled by the agent image's busybox tar. An
// incoming tree is extracted into a staging directory beside its destination and renamed into
// place in one step, so a half-extracted tree never appears; an existing destination is left
// alone (refused) rather than merged into.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { libc } from './libc';
import {
  AgentRequestError,
  type GetTreeRequest,
  type InstallTreeOptions,
  type OutboundStream,
  type PutTreeRequest,
  type TreeResult,
} from '@smolvm/agent-protocol';

function targetOf(op: string, dest: string, name: string): string {
  const st = fs.statSync(dest, { throwIfNoEntry: false });
  const target = st?.isDirectory() ? path.join(dest, name) : dest;
  if (fs.existsSync(target))
    throw new AgentRequestError(op, 'bad-request', `${target} already exists; copy to a new path, or remove it first`);
  if (!fs.statSync(path.dirname(target), { throwIfNoEntry: false })?.isDirectory())
    throw new AgentRequestError(op, 'not-found', `${path.dirname(target)} is not a directory`);
  return target;
}

/** Runs busybox tar; resolves when it exited 0, rejects with its last stderr lines otherwise. */
function tar(
  op: string,
  busybox: string,
  args: string[],
  stdin: Readable | null,
): { stdout: Readable; done: Promise<void>; kill(): void } {
  const child = spawn(busybox, ['tar', ...args], {
    argv0: 'busybox',
    stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  const stdout = child.stdout as Readable;
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  if (stdin && child.stdin) {
    stdin.pipe(child.stdin);
    child.stdin.on('error', () => undefined);
  }
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (err) => reject(new AgentRequestError(op, 'io-error', `tar: ${err.message}`)));
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else
        reject(
          new AgentRequestError(
            op,
            'io-error',
            `tar failed (${signal ?? `exit ${code}`}): ${stderr.trim().split('\n').slice(-2).join('; ')}`,
          ),
        );
    });
  });
  return { stdout, done, kill: () => child.kill('SIGKILL') };
}

/** The tree's files and the rename reach the disk before the copy is reported done. */
function syncFs(): void {
  libc().sync();
}

async function extract(
  op: string,
  busybox: string,
  dest: string,
  name: string,
  input: { file: string } | { stream: Readable; maxBytes: number },
): Promise<TreeResult> {
  const target = targetOf(op, dest, name);
  const staging = path.join(
    path.dirname(target),
    `.${path.basename(target).slice(0, 200)}.smolvm-${crypto.randomBytes(6).toString('hex')}.part`,
  );
  fs.mkdirSync(staging, { mode: 0o700 });
  let bytes = 0;
  try {
    if ('file' in input) {
      bytes = fs.statSync(input.file).size;
      await tar(op, busybox, ['-x', '-o', '-f', input.file, '-C', staging], null).done;
    } else {
      const counted = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          bytes += chunk.length;
          if (bytes > input.maxBytes)
            return cb(
              new AgentRequestError(
                op,
                'too-large',
                `the directory is larger than the byte cap of ${input.maxBytes} bytes`,
              ),
            );
          cb(null, chunk);
        },
      });
      const run = tar(op, busybox, ['-x', '-o', '-f', '-', '-C', staging], counted);
      await Promise.all([
        pipeline(input.stream, counted).catch((err: unknown) => {
          run.kill();
          throw err;
        }),
        run.done,
      ]);
    }
    const entries = fs.readdirSync(staging);
    if (entries.length !== 1 || entries[0] !== name || !fs.lstatSync(path.join(staging, name)).isDirectory()) {
      throw new AgentRequestError(op, 'bad-request', `the archive must hold exactly one directory named ${name}`);
    }
    fs.renameSync(path.join(staging, name), target);
    syncFs();
    return { path: target, bytes };
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

export function installTree(req: InstallTreeOptions, busybox: string): Promise<TreeResult> {
  return extract('installTree', busybox, req.path, req.name, { file: req.source });
}

export function putTree(req: PutTreeRequest, data: Readable, busybox: string): Promise<TreeResult> {
  return extract('putTree', busybox, req.path, req.name, { stream: data, maxBytes: req.maxBytes });
}

/** Streams the directory as tar (its base name as the single top-level entry). */
export async function getTree(req: GetTreeRequest, out: OutboundStream, busybox: string): Promise<{ bytes: number }> {
  const st = fs.statSync(req.path, { throwIfNoEntry: false });
  if (!st) throw new AgentRequestError('getTree', 'not-found', `${req.path} does not exist`);
  if (!st.isDirectory()) throw new AgentRequestError('getTree', 'bad-request', `${req.path} is not a directory`);
  const resolved = path.resolve(req.path);
  const run = tar(
    'getTree',
    busybox,
    ['-c', '-f', '-', '-C', path.dirname(resolved), path.basename(resolved) || '.'],
    null,
  );
  let bytes = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      if (bytes > req.maxBytes)
        return cb(
          new AgentRequestError(
            'getTree',
            'too-large',
            `${req.path} is larger than the byte cap of ${req.maxBytes} bytes (exceeding the byte cap)`,
          ),
        );
      cb(null, chunk);
    },
  });
  try {
    await Promise.all([pipeline(run.stdout, counted, out), run.done]);
  } catch (err) {
    run.kill();
    out.destroy();
    throw err;
  }
  return { bytes };
}
