// `smolvm machine cp`: one file either way, streamed with bounded memory (the protocol's credit
// window), atomic at the destination on both sides. On the host the guest only ever supplies
// bytes: the file name and directory come from the user, and the file is created fresh (staging
// + rename), so nothing the guest sends can write elsewhere or follow a link.
import fs from 'node:fs';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SmolvmError, UsageError, tempPathFor } from '@smolvm/common';
import { isValidMachineName } from '@smolvm/machine-store';
import { AgentRequestError, MAX_TRANSFER_BYTES } from '@smolvm/agent-protocol';
import { cliMachines } from './machines';
import { transferProgress } from '../../output/transfer';
import type { CpArgs } from './cp';

interface GuestPath {
  machine: string;
  path: string;
}

/** `NAME:/path` names a machine's file; anything else is a host path (./a:b stays a host path). */
export function parseCpTarget(arg: string): GuestPath | string {
  const colon = arg.indexOf(':');
  if (colon <= 0) return arg;
  const machine = arg.slice(0, colon);
  const guest = arg.slice(colon + 1);
  if (!isValidMachineName(machine)) return arg;
  if (!guest.startsWith('/')) {
    throw new UsageError(`the guest path in ${arg} must be absolute`, { remedy: `write ${machine}:/workspace/... (paths start at the guest's /)` });
  }
  return { machine, path: guest };
}

export async function runCp(args: CpArgs): Promise<void> {
  const src = parseCpTarget(args.src);
  const dst = parseCpTarget(args.dst);
  if (typeof src !== 'string' && typeof dst !== 'string') throw new UsageError('machine cp copies between the host and a machine, not between two machines', { remedy: 'copy to the host first, then on' });
  if (typeof src === 'string' && typeof dst === 'string') throw new UsageError('neither side names a machine', { remedy: 'write one side as NAME:/path, e.g. smolvm machine cp ./f dev:/workspace/f' });
  if (typeof dst !== 'string') await upload(src as string, dst, args.quiet);
  else await download(src as GuestPath, dst, args.quiet);
}

function counter(onBytes: (n: number) => void): Transform {
  let n = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      onBytes(n);
      cb(null, chunk);
    },
  });
}

async function upload(hostPath: string, dst: GuestPath, quiet: boolean): Promise<void> {
  const st = fs.statSync(hostPath, { throwIfNoEntry: false });
  if (!st) throw new UsageError(`${hostPath} does not exist`, { remedy: 'check the path' });
  if (!st.isFile()) throw new UsageError(`${hostPath} is not a regular file`, { remedy: 'copy files one at a time, or mount a directory with --volume' });
  if (st.size >= MAX_TRANSFER_BYTES) {
    throw new UsageError(`total_size exceeds maximum: ${hostPath} is ${st.size} bytes, the per-transfer cap is ${MAX_TRANSFER_BYTES} bytes (4 GiB)`, {
      remedy: 'mount the host directory with --volume instead',
    });
  }
  const client = await cliMachines().connect(dst.machine);
  const progress = transferProgress({ quiet, total: st.size, verb: 'uploading' });
  const t0 = performance.now();
  try {
    const source = fs.createReadStream(hostPath, { highWaterMark: 1024 * 1024 });
    const result = await client.putFile({ path: dst.path, size: st.size, mode: st.mode & 0o777, name: path.basename(hostPath) }, source.pipe(counter(progress.update)));
    progress.done();
    summary('uploaded', result.bytes, `${dst.machine}:${result.path}`, t0);
  } catch (err) {
    progress.done();
    throw explain(err, `${dst.machine}:${dst.path}`);
  } finally {
    client.close();
  }
}

async function download(src: GuestPath, hostPath: string, quiet: boolean): Promise<void> {
  let target = hostPath;
  if (fs.statSync(hostPath, { throwIfNoEntry: false })?.isDirectory() || hostPath.endsWith('/')) {
    const name = path.posix.basename(src.path);
    if (!name || name === '.' || name === '..') throw new UsageError(`${src.path} does not name a file`, { remedy: 'name the file to copy, e.g. dev:/workspace/out.json' });
    target = path.join(hostPath, name);
  }
  const dir = path.dirname(path.resolve(target));
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`${dir} is not a directory`, { remedy: 'create it first' });
  const client = await cliMachines().connect(src.machine);
  const t0 = performance.now();
  let staging: string | undefined;
  try {
    const file = await client.getFile({ path: src.path, maxBytes: MAX_TRANSFER_BYTES });
    const progress = transferProgress({ quiet, total: file.size, verb: 'downloading' });
    staging = tempPathFor(path.resolve(target));
    // wx: a fresh file of ours; the guest chooses neither its name nor where it goes.
    const out = fs.createWriteStream(staging, { flags: 'wx', mode: 0o600 });
    let received = 0;
    await pipeline(
      file.data as Readable,
      counter((n) => {
        received = n;
        if (n > file.size) throw new SmolvmError(`the machine sent more than the ${file.size} bytes it announced`);
        progress.update(n);
      }),
      out,
    );
    progress.done();
    if (received !== file.size) throw new SmolvmError(`the transfer ended after ${received} of ${file.size} bytes`, { remedy: 'check that the machine is still running and try again' });
    const fd = fs.openSync(staging, 'r+');
    try {
      // Never setuid/setgid/sticky from a guest.
      fs.fchmodSync(fd, file.mode & 0o777);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(staging, target);
    staging = undefined;
    summary('downloaded', received, target, t0);
  } catch (err) {
    throw explain(err, `${src.machine}:${src.path}`);
  } finally {
    if (staging) fs.rmSync(staging, { force: true });
    client.close();
  }
}

function summary(verb: string, bytes: number, where: string, t0: number): void {
  const s = (performance.now() - t0) / 1000;
  process.stdout.write(`${verb} ${bytes} bytes to ${where} in ${s.toFixed(2)} s (${(bytes / 1e6 / Math.max(s, 0.001)).toFixed(1)} MB/s)\n`);
}

function explain(err: unknown, where: string): unknown {
  if (!(err instanceof AgentRequestError)) return err;
  const message = err.message.replace(/^agent \w+: /, '');
  switch (err.code) {
    case 'too-large':
      return new UsageError(message, { remedy: 'mount the directory with --volume instead of copying' });
    case 'not-found':
      return new UsageError(`${where}: ${message}`, { remedy: 'check the path (directories must exist)' });
    default:
      return new SmolvmError(`${where}: ${message}`);
  }
}
