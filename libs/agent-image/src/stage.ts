// Assembles the agent image's root directory on the host, ready for the erofs writer.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { SmolvmError } from '@smolvm/common';
import { plainNode } from '@smolvm/sea';
import { busyboxApplets } from './busybox';
import { hasSymbolTable } from './elf';
import { koffiRuntimeFiles, type KoffiFiles } from './koffi';
import {
  AGENT_DIR,
  AGENT_IMAGE_MARKER,
  BUNDLE_PATH,
  FORMAT_VERSION,
  GROUP,
  MOUNT_POINTS,
  NODE_PATH,
  PASSWD,
  RUNTIME_EROFS_PATH,
  RUNTIME_MOUNT,
  SNAPSHOT_PATH,
  initScript,
} from './layout';
import type { ResolvedLibraries } from './libraries';
import { RUNTIME_DISK_ID, writeRuntimeErofs, type RuntimeSource } from './runtime';

export interface StageInputs {
  node: string;
  nodeVersion: string;
  bundle: string;
  busybox: string;
  koffi: KoffiFiles;
  libraries: ResolvedLibraries;
  /** null: no snapshot; 'host': build one here; else a blob built elsewhere (in a guest). */
  snapshot: null | 'host' | { blob: string };
  nodeFlags: string[];
  /** The node is this executable's, read from the runtime disk in the guest (runtime.ts). */
  runtime?: RuntimeSource;
}

function inRoot(root: string, absolute: string): string {
  return path.join(root, absolute.replace(/^\/+/, ''));
}

function copy(from: string, to: string, mode: number): void {
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.copyFileSync(from, to);
  fs.chmodSync(to, mode);
}

function write(to: string, content: string, mode = 0o644): void {
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.writeFileSync(to, content, { mode });
  fs.chmodSync(to, mode);
}

export function stageRoot(root: string, inputs: StageInputs): void {
  fs.mkdirSync(root, { recursive: true, mode: 0o755 });
  fs.chmodSync(root, 0o755);
  for (const dir of MOUNT_POINTS) fs.mkdirSync(path.join(root, dir), { mode: 0o755 });
  fs.chmodSync(path.join(root, 'tmp'), 0o1777);
  fs.chmodSync(path.join(root, 'root'), 0o700);

  copy(inputs.busybox, path.join(root, 'bin/busybox'), 0o755);
  for (const applet of busyboxApplets(inputs.busybox)) {
    const link = path.join(root, applet);
    fs.mkdirSync(path.dirname(link), { recursive: true });
    if (!fs.existsSync(link)) fs.symlinkSync('/bin/busybox', link);
  }

  const node = inRoot(root, NODE_PATH);
  // A runtime's node is staged as a plain copy only for the checks below; finishRuntimeRoot replaces it.
  if (inputs.runtime) {
    fs.mkdirSync(path.dirname(node), { recursive: true });
    plainNode(inputs.runtime.executable, path.dirname(node));
  } else stageNode(inputs.node, node);
  const nodeVersion = inputs.runtime
    ? execFileSync(node, ['--version'], { encoding: 'utf8', env: {} }).trim()
    : inputs.nodeVersion;
  copy(inputs.bundle, inRoot(root, BUNDLE_PATH), 0o644);
  for (const pkg of inputs.koffi.packages) {
    for (const file of koffiRuntimeFiles(pkg.dir)) {
      copy(
        file,
        path.join(inRoot(root, AGENT_DIR), 'node_modules', pkg.name, path.relative(pkg.dir, file)),
        file.endsWith('.node') ? 0o755 : 0o644,
      );
    }
  }
  // One copy per library; further names for the same file (ld.so under /lib64 and the
  // multiarch dir) become hard links.
  const copied = new Map<string, string>();
  for (const [lookup, real] of inputs.libraries.files) {
    const dest = inRoot(root, lookup);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    const first = copied.get(real);
    if (first) fs.linkSync(first, dest);
    else {
      copy(real, dest, 0o755);
      copied.set(real, dest);
    }
  }

  write(path.join(root, 'etc/passwd'), PASSWD);
  write(path.join(root, 'etc/group'), GROUP);
  write(path.join(root, 'etc/hostname'), 'smolvm\n');
  const snapshot = inputs.snapshot !== null;
  write(
    inRoot(root, AGENT_IMAGE_MARKER),
    JSON.stringify({ format: FORMAT_VERSION, node: nodeVersion, snapshot }) + '\n',
  );
  write(
    path.join(root, 'init'),
    initScript({
      snapshot,
      nodeFlags: inputs.nodeFlags,
      libraryDirs: inputs.libraries.dirs,
      ...(inputs.runtime ? { runtimeDisk: RUNTIME_DISK_ID } : {}),
    }),
    0o755,
  );

  // With the staged (stripped) node: the one the guest runs must load koffi and the snapshot.
  checkKoffiLoads(root, node);
  if (inputs.snapshot === 'host') buildSnapshot(root, node, inputs.nodeFlags);
  else if (inputs.snapshot) copy(inputs.snapshot.blob, inRoot(root, SNAPSHOT_PATH), 0o644);
}

/**
 * With a runtime, the staged node goes (it was there for the checks): the image gets the erofs that
 * reads it from the runtime disk, the mount point /init mounts that on, and NODE_PATH as a link into it.
 */
export async function finishRuntimeRoot(root: string, runtime: RuntimeSource): Promise<void> {
  await writeRuntimeErofs(runtime, inRoot(root, RUNTIME_EROFS_PATH));
  fs.chmodSync(inRoot(root, RUNTIME_EROFS_PATH), 0o644);
  fs.mkdirSync(inRoot(root, RUNTIME_MOUNT), { mode: 0o755 });
  fs.rmSync(inRoot(root, NODE_PATH));
  fs.symlinkSync(`${path.basename(RUNTIME_MOUNT)}/node`, inRoot(root, NODE_PATH));
}

/**
 * Node without its symbol table (`strip`: 12.6 of Node 20's 98.9 MB), which only debuggers and
 * native crash dumps read: the code, its exported symbols (native addons link against them) and
 * JavaScript stack traces are the same. A node that has none (the single-file smolvm's, stripped
 * when it was built) is copied as it is.
 */
function stageNode(from: string, to: string): void {
  fs.mkdirSync(path.dirname(to), { recursive: true });
  if (!hasSymbolTable(from)) {
    copy(from, to, 0o755);
    return;
  }
  try {
    execFileSync('strip', ['--strip-all', '-o', to, from], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    throw new SmolvmError(
      e.code === 'ENOENT'
        ? `strip is not installed: the agent image ships ${from} without its symbol table`
        : `strip of ${from} failed: ${e.stderr?.toString().trim() ?? e.message}`,
      { remedy: 'install binutils (apt-get install binutils), or run tools/setup' },
    );
  }
  fs.chmodSync(to, 0o755);
}

/** The staged koffi must load from its new place with this node, or the agent cannot start. */
function checkKoffiLoads(root: string, node: string): void {
  const koffiDir = path.join(inRoot(root, AGENT_DIR), 'node_modules/koffi');
  try {
    execFileSync(node, ['-e', `require(${JSON.stringify(koffiDir)}).load('libc.so.6')`], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {},
    });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim().split('\n').slice(-3).join(' ');
    throw new SmolvmError(`the agent image's copy of koffi does not load: ${stderr ?? String(err)}`, {
      remedy: 'reinstall node modules (npm ci) and retry',
    });
  }
}

/** A V8 startup snapshot of the bundle, built with the very node binary that will load it. */
function buildSnapshot(root: string, node: string, flags: string[]): void {
  const blob = inRoot(root, SNAPSHOT_PATH);
  try {
    execFileSync(node, [...flags, '--snapshot-blob', blob, '--build-snapshot', inRoot(root, BUNDLE_PATH)], {
      cwd: root,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { SMOLVM_AGENT_DIR: AGENT_DIR },
    });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim().split('\n').slice(-3).join(' ');
    throw new SmolvmError(`building the agent's startup snapshot failed: ${stderr ?? String(err)}`);
  }
  fs.chmodSync(blob, 0o644);
}
