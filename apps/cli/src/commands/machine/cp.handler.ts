// `smolvm machine cp`: a file or a directory either way, streamed with bounded memory (the
// protocol's credit window), atomic at the destination on both sides; the transfers themselves
// (and what is defended against a guest) are @smolvm/machines' (transfer.ts).
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '@smolvm/common';
import { isValidMachineName } from '@smolvm/machine-store';
import {
  assertUnderCap,
  byteCounter,
  extractGuestTree,
  openGuestPath,
  packTree,
  saveGuestFile,
  treeBytes,
  uploadFile,
  uploadTar,
} from '@smolvm/machines';
import { summary, type GuestPath } from './cp-common';
import { cliMachines } from './machines';
import { transferProgress } from '../../output/transfer';
import type { CpArgs } from './cp';

/** `NAME:/path` names a machine's file; anything else is a host path (./a:b stays a host path). */
export function parseCpTarget(arg: string): GuestPath | string {
  const colon = arg.indexOf(':');
  if (colon <= 0) return arg;
  const machine = arg.slice(0, colon);
  const guest = arg.slice(colon + 1);
  if (!isValidMachineName(machine)) return arg;
  if (!guest.startsWith('/')) {
    throw new UsageError(`the guest path in ${arg} must be absolute`, {
      remedy: `write ${machine}:/workspace/... (paths start at the guest's /)`,
    });
  }
  return { machine, path: guest };
}

export async function runCp(args: CpArgs): Promise<void> {
  const src = parseCpTarget(args.src);
  const dst = parseCpTarget(args.dst);
  if (typeof src !== 'string' && typeof dst !== 'string')
    throw new UsageError('machine cp copies between the host and a machine, not between two machines', {
      remedy: 'copy to the host first, then on',
    });
  if (typeof src === 'string' && typeof dst === 'string')
    throw new UsageError('neither side names a machine', {
      remedy: 'write one side as NAME:/path, e.g. smolvm machine cp ./f dev:/workspace/f',
    });
  if (typeof dst !== 'string') await upload(src as string, dst, args.quiet);
  else await download(src as GuestPath, dst, args.quiet);
}

async function upload(hostPath: string, dst: GuestPath, quiet: boolean): Promise<void> {
  const st = fs.statSync(hostPath, { throwIfNoEntry: false });
  if (!st) throw new UsageError(`${hostPath} does not exist`, { remedy: 'check the path' });
  if (!st.isDirectory() && !st.isFile())
    throw new UsageError(`${hostPath} is not a regular file or directory`, {
      remedy: 'copy files and directories only',
    });
  const total = st.isDirectory() ? treeBytes(hostPath) : st.size;
  assertUnderCap(total, hostPath);
  const client = await cliMachines().connect(dst.machine);
  const progress = transferProgress({ quiet, total, verb: 'uploading' });
  const t0 = performance.now();
  try {
    if (st.isDirectory()) {
      const { name, archive } = await packTree(hostPath);
      const result = await uploadTar(client, dst, name, archive.pipe(byteCounter(progress.update)));
      progress.done();
      summary('uploaded', result.bytes, `${dst.machine}:${result.path}`, t0, 'bytes of tar');
    } else {
      const source = fs.createReadStream(hostPath, { highWaterMark: 1024 * 1024 });
      const result = await uploadFile(
        client,
        dst,
        { size: st.size, mode: st.mode, name: path.basename(hostPath) },
        source.pipe(byteCounter(progress.update)),
      );
      progress.done();
      summary('uploaded', result.bytes, `${dst.machine}:${result.path}`, t0);
    }
  } finally {
    progress.done();
    client.close();
  }
}

async function download(src: GuestPath, hostPath: string, quiet: boolean): Promise<void> {
  const client = await cliMachines().connect(src.machine);
  const t0 = performance.now();
  try {
    const entry = await openGuestPath(client, src);
    const intoDir = fs.statSync(hostPath, { throwIfNoEntry: false })?.isDirectory() ?? false;
    if (entry.kind === 'directory') {
      const name = path.posix.basename(src.path.replace(/\/+$/, ''));
      if (!name || name === '.' || name === '..')
        throw new UsageError(`${src.path} does not name a directory to copy`, {
          remedy: 'name it, e.g. dev:/workspace/results',
        });
      const target = path.resolve(intoDir ? path.join(hostPath, name) : hostPath);
      const progress = transferProgress({ quiet, total: 0, verb: 'downloading' });
      try {
        const result = await extractGuestTree(entry, name, target, {
          onBytes: progress.update,
          what: `${src.machine}:${src.path}`,
        });
        progress.done();
        if (result.skipped > 0)
          process.stderr.write(
            `warning: skipped ${result.skipped} special file${result.skipped > 1 ? 's' : ''} (devices, fifos)\n`,
          );
        summary('downloaded', result.bytes, target, t0, 'bytes of tar');
      } finally {
        progress.done();
      }
      return;
    }
    let target = hostPath;
    if (intoDir || hostPath.endsWith('/')) {
      const name = path.posix.basename(src.path);
      if (!name || name === '.' || name === '..')
        throw new UsageError(`${src.path} does not name a file`, {
          remedy: 'name the file to copy, e.g. dev:/workspace/out.json',
        });
      target = path.join(hostPath, name);
    }
    const dir = path.dirname(path.resolve(target));
    if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
      entry.data.destroy();
      throw new UsageError(`${dir} is not a directory`, { remedy: 'create it first' });
    }
    const progress = transferProgress({ quiet, total: entry.size, verb: 'downloading' });
    try {
      const received = await saveGuestFile(entry, target, progress.update);
      progress.done();
      summary('downloaded', received, target, t0);
    } finally {
      progress.done();
    }
  } finally {
    client.close();
  }
}
