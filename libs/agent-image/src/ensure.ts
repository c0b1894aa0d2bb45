// ensureAgentImage: the agent image for this host, built on first use and cached by the hash
// of everything that goes into it.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { NotFoundError, assertTrustedPath, ensurePrivateDir, fsyncDir, markUsed, tempPathFor } from '@smolvm/common';
import { buildErofsFromDirectory } from '@smolvm/erofs';
import { AGENT_DISK_ID, agentKernelArgs } from './boot';
import { findStaticBusybox } from './busybox';
import { HashMemo } from './hash';
import { koffiRuntimeFiles, locateKoffi, type KoffiFiles } from './koffi';
import { FORMAT_VERSION, initScript } from './layout';
import { resolveLibraries, type ResolvedLibraries } from './libraries';
import { RUNTIME_DISK_ID, type RuntimeSource } from './runtime';
import { finishRuntimeRoot, stageRoot } from './stage';

export interface AgentImageOptions {
  /** smolvm's cache directory; the image goes to `<cacheDir>/agent/<key>.erofs`. */
  cacheDir: string;
  /** The bundled guest agent (apps/guest-agent/dist/agent.js). */
  agentBundle: string;
  /** Node binary to ship (default: the one running now). Must be a Linux build for the guest's architecture. */
  node?: string;
  /** A statically linked busybox (default: found on this host). */
  busybox?: string;
  /** A directory whose node_modules holds koffi (default: where this library is installed). */
  koffiFrom?: string;
  /**
   * Start the agent from a V8 startup snapshot: 'host' builds the blob here; `{ blob }` ships
   * one built elsewhere (in a guest: a blob only loads on a CPU with the same features, and
   * TCG's CPU is not the host's). Default none (see README for the measurements).
   */
  snapshot?: 'none' | 'host' | { blob: string };
  /** node/V8 flags for the agent (default none; a snapshot must be built with the same flags). */
  nodeFlags?: string[];
  /** Writer for the image: our TypeScript erofs writer (default) or mkfs.erofs. */
  writer?: 'smolvm' | 'mkfs.erofs';
  /**
   * The guest's node is this single executable's (a pack's stub), read from it as the disk
   * RUNTIME_DISK_ID (runtime.ts) instead of a copy in the image; `node` is then not used.
   */
  runtime?: RuntimeSource;
}

export interface AgentImage {
  /** The erofs image: attach it read-only as the VM's first disk. */
  path: string;
  key: string;
  /** Kernel arguments that boot from it (see README: boot contract). */
  kernelArgs: string[];
  /** Serial to give the disk (diagnostics; the kernel finds it as /dev/vda). */
  diskId: string;
  /** True when this call built the image. */
  built: boolean;
  /** The image reads its node from this disk (AgentImageOptions.runtime): attach it, read-only, with this serial. */
  runtimeDiskId?: string;
}

/**
 * V8 flags of the guest agent, chosen for VMs restored from boot snapshots (issue 7): under TCG
 * each code path a restored guest runs for the first time is translated again, so the agent
 * should run as little distinct code as possible after a restore. Measured in translation blocks
 * from restore to the end of a first `exec true`: 58k with no flags, 35k with these (with the
 * pre-snapshot warm-ups). --jitless: no compilers and no generated code to translate;
 * --no-lazy: every function compiled into the startup snapshot, none parsed after a restore;
 * --no-flush-bytecode: and none dropped in between; --min-semi-space-size=8 + --expose-gc: the
 * heap is collected before the save, and a run's first requests then need no GC.
 */
export const DEFAULT_NODE_FLAGS: string[] = [
  '--jitless',
  '--no-lazy',
  '--no-flush-bytecode',
  '--min-semi-space-size=8',
  '--expose-gc',
];

interface HostInputs {
  node: string;
  nodeVersion: string;
  busybox: string;
  koffi: KoffiFiles;
  koffiFiles: string[];
  libraries: ResolvedLibraries;
}

/**
 * The host files an image is made of, found once per process (package lookups, ELF walks of
 * node and its libraries: ~15 ms): a VM start asks for two images (plain, then the one with the
 * startup snapshot). Processes are short-lived (one command, or one machine's supervisor), so
 * an upgrade of node or its libraries is seen by the next one.
 */
const hostInputsMemo = new Map<string, HostInputs>();

function hostInputs(opts: AgentImageOptions): HostInputs {
  const memoKey = `${opts.runtime?.executable ?? opts.node ?? ''}\0${opts.busybox ?? ''}\0${opts.koffiFrom ?? ''}`;
  const known = hostInputsMemo.get(memoKey);
  if (known) return known;
  // A runtime executable has node's ELF dependencies; its version is read when it is staged (its
  // own --version would start the program inside it), and its bytes are in the key (sha256).
  const node = fs.realpathSync(opts.runtime?.executable ?? opts.node ?? process.execPath);
  const busybox = findStaticBusybox(opts.busybox);
  const koffi = locateKoffi(opts.koffiFrom);
  const libraries = resolveLibraries([node, ...koffi.natives]);
  const nodeVersion = opts.runtime
    ? ''
    : node === fs.realpathSync(process.execPath)
      ? process.version
      : execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
  const inputs = {
    node,
    nodeVersion,
    busybox,
    koffi,
    koffiFiles: koffi.packages.flatMap((p) => koffiRuntimeFiles(p.dir)),
    libraries,
  };
  hostInputsMemo.set(memoKey, inputs);
  return inputs;
}

export async function ensureAgentImage(opts: AgentImageOptions): Promise<AgentImage> {
  if (!fs.existsSync(opts.agentBundle)) {
    throw new NotFoundError(`the guest agent bundle ${opts.agentBundle} does not exist`, {
      remedy: 'build it: npx nx build guest-agent',
    });
  }
  const { node, nodeVersion, busybox, koffi, koffiFiles, libraries } = hostInputs(opts);
  const snapshot = opts.snapshot === undefined || opts.snapshot === 'none' ? null : opts.snapshot;
  // The blob becomes the guest agent's code: only one only this user can have written.
  if (snapshot !== null && snapshot !== 'host') assertTrustedPath(snapshot.blob, path.dirname(snapshot.blob));
  const nodeFlags = opts.nodeFlags ?? DEFAULT_NODE_FLAGS;

  const dir = path.join(opts.cacheDir, 'agent');
  // What every VM boots: nobody else may put or swap an image here.
  ensurePrivateDir(dir);
  const memo = new HashMemo(path.join(dir, 'input-hashes.json'));
  const key = imageKey({
    memo,
    node,
    nodeVersion,
    bundle: opts.agentBundle,
    busybox,
    koffiFiles,
    libraries: [...libraries.files],
    snapshot,
    runtime: opts.runtime,
    init: initScript({
      snapshot: snapshot !== null,
      nodeFlags,
      libraryDirs: libraries.dirs,
      ...(opts.runtime ? { runtimeDisk: RUNTIME_DISK_ID } : {}),
    }),
  });
  memo.save();
  const finalPath = path.join(dir, `${key}.erofs`);
  const result = {
    path: finalPath,
    key,
    kernelArgs: agentKernelArgs(),
    diskId: AGENT_DISK_ID,
    ...(opts.runtime ? { runtimeDiskId: RUNTIME_DISK_ID } : {}),
  };
  if (fs.existsSync(finalPath)) {
    // What every VM boots as its root: UntrustedPathError (with a remedy) if another user could have put it there.
    assertTrustedPath(finalPath, opts.cacheDir);
    markUsed(finalPath);
    return { ...result, built: false };
  }

  sweepStale(dir);
  const staging = fs.mkdtempSync(path.join(dir, '.staging-'));
  const tmp = tempPathFor(finalPath);
  try {
    stageRoot(staging, {
      node,
      nodeVersion,
      bundle: opts.agentBundle,
      busybox,
      koffi,
      libraries,
      snapshot,
      nodeFlags,
      ...(opts.runtime ? { runtime: opts.runtime } : {}),
    });
    if (opts.runtime) await finishRuntimeRoot(staging, opts.runtime);
    await writeImage(staging, tmp, opts.writer ?? 'smolvm');
    const fd = fs.openSync(tmp, 'r');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    // Concurrent builders each rename a complete image with the same content: the last one wins.
    fs.renameSync(tmp, finalPath);
    fsyncDir(dir);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
    fs.rmSync(tmp, { force: true });
  }
  sweepUnused(dir, key);
  return { ...result, built: true };
}

interface KeyInputs {
  memo: HashMemo;
  node: string;
  nodeVersion: string;
  bundle: string;
  busybox: string;
  koffiFiles: string[];
  libraries: Array<[string, string]>;
  snapshot: null | 'host' | { blob: string };
  runtime: RuntimeSource | undefined;
  init: string;
}

function imageKey(k: KeyInputs): string {
  const h = crypto.createHash('sha256');
  const add = (label: string, value: string) => h.update(`${label}\0${value}\0`);
  add('format', String(FORMAT_VERSION));
  // A runtime's bytes are named by the caller's digest (hashing the ~90 MB executable again here would cost each pack).
  if (k.runtime) add('runtime', `${k.runtime.size} ${k.runtime.sha256}`);
  else add('node', `${k.nodeVersion} ${k.memo.sha256(k.node)}`);
  add('bundle', k.memo.sha256(k.bundle));
  add('busybox', k.memo.sha256(k.busybox));
  for (const f of k.koffiFiles) add('koffi', `${path.basename(f)} ${k.memo.sha256(f)}`);
  for (const [lookup, real] of k.libraries) add('lib', `${lookup} ${k.memo.sha256(real)}`);
  add('snapshot', k.snapshot === null || k.snapshot === 'host' ? String(k.snapshot) : k.memo.sha256(k.snapshot.blob));
  add('init', k.init);
  return h.digest('hex').slice(0, 32);
}

async function writeImage(root: string, out: string, writer: 'smolvm' | 'mkfs.erofs'): Promise<void> {
  if (writer === 'mkfs.erofs') {
    execFileSync('mkfs.erofs', ['--all-root', '--quiet', out, root], { stdio: ['ignore', 'ignore', 'pipe'] });
    return;
  }
  await buildErofsFromDirectory(root, out, { owner: { uid: 0, gid: 0 }, volumeName: 'smolvm-agent' });
}

/** Leftovers of builds that crashed (an hour is far longer than any build). */
/**
 * Every new node, agent or smolvm build makes a new image (~110 MB): when one is built, images
 * no start has used for a day go, with the startup blobs built for them. Each start marks the
 * image it uses (mtime), so an image in use is never old; a VM already running keeps its open file.
 */
export const UNUSED_IMAGE_MS = 24 * 3600_000;

function sweepUnused(dir: string, keep: string): void {
  const cutoff = Date.now() - UNUSED_IMAGE_MS;
  const names = fs.readdirSync(dir);
  for (const name of names) {
    const key = /^([0-9a-f]+)\.erofs$/.exec(name)?.[1];
    if (!key || key === keep) continue;
    try {
      if (fs.statSync(path.join(dir, name)).mtimeMs >= cutoff) continue;
      fs.rmSync(path.join(dir, name), { force: true });
      for (const blob of names.filter((n) => n.startsWith(`${key}.`) && n.endsWith('.blob')))
        fs.rmSync(path.join(dir, blob), { force: true });
    } catch {
      // Removed by someone else meanwhile.
    }
  }
}

function sweepStale(dir: string): void {
  const cutoff = Date.now() - 3600_000;
  for (const name of fs.readdirSync(dir)) {
    if (!name.startsWith('.staging-') && !name.includes('.tmp-')) continue;
    const p = path.join(dir, name);
    try {
      if (fs.statSync(p).mtimeMs < cutoff) fs.rmSync(p, { recursive: true, force: true });
    } catch {
      // Someone else removed it.
    }
  }
}
