// Builds an app into one executable with Node's single-executable-application support:
//   node tools/run-ts.mjs tools/sea/build.ts apps/cli        (Nx: npx nx build-sea cli)
// The app's sea.json names its main script (an esbuild CommonJS bundle that requires only Node
// built-ins), extra raw assets, and the files the executable carries for its users (guest
// kernel, agent bundle, busybox, koffi, the Debian base of bare VMs), which @smolvm/sea extracts
// per user by digest. The
// executable is this node binary with the SEA blob injected by postject and its fuse set.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { inject } from 'postject';
import { findStaticBusybox, koffiRuntimeFiles, locateKoffi } from '@smolvm/agent-image';
import { MANIFEST_ASSET, MANIFEST_VERSION, fuseOffset, type SeaFile, type SeaManifest } from '@smolvm/sea';

const SENTINEL_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

/** One file the executable carries: from a path (relative to the app), or a well-known source. */
type FileSpec =
  | { name: string; path: string; gzip?: boolean }
  | { name: string; kernel: true; gzip?: boolean }
  | { name: string; busybox: true; gzip?: boolean }
  /** The base tools/base/build made (its record and zstd tar, under `name/`); none if not built. */
  | { name: string; base: true }
  | { koffi: true };

interface SeaConfig {
  app: string;
  /** The main script, relative to the app. */
  main: string;
  /** The executable to write, relative to the app. */
  output: string;
  /** Raw assets the main script reads itself (key -> path relative to the app). */
  assets?: Record<string, string>;
  files?: FileSpec[];
}

// run-ts bundles this script into a temp dir and says where the checkout is.
const root = process.env.SMOLVM_WORKSPACE ?? path.resolve(__dirname, '../..');

async function main(): Promise<void> {
  const appArg = process.argv[2];
  if (!appArg) {
    console.error('usage: node tools/run-ts.mjs tools/sea/build.ts APP_DIR   (e.g. apps/cli)');
    process.exit(2);
  }
  const appDir = path.resolve(root, appArg);
  const config = JSON.parse(fs.readFileSync(path.join(appDir, 'sea.json'), 'utf8')) as SeaConfig;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-sea-'));
  const output = path.join(appDir, config.output);
  const tmpOutput = `${output}.tmp-${process.pid}`;
  try {
    const assets: Record<string, string> = {};
    for (const [key, rel] of Object.entries(config.assets ?? {})) assets[key] = mustExist(path.join(appDir, rel));
    const files: SeaFile[] = [];
    for (const [i, spec] of sources(config.files ?? [], appDir).entries()) {
      const data = fs.readFileSync(spec.from);
      const asset = `file-${i}`;
      const stored = spec.gzip ? zlib.gzipSync(data, { level: 9 }) : data;
      const assetPath = path.join(work, asset);
      fs.writeFileSync(assetPath, stored);
      assets[asset] = assetPath;
      const mode = (fs.statSync(spec.from).mode & 0o111) !== 0 ? 0o755 : 0o644;
      files.push({ name: spec.name, asset, sha256: sha256(data), size: data.length, mode, gzip: spec.gzip });
    }
    const mainScript = mustExist(path.join(appDir, config.main));
    const manifest: SeaManifest = {
      version: MANIFEST_VERSION,
      app: config.app,
      node: process.version,
      main: sha256(fs.readFileSync(mainScript)),
      files,
    };
    assets[MANIFEST_ASSET] = path.join(work, MANIFEST_ASSET);
    fs.writeFileSync(assets[MANIFEST_ASSET], JSON.stringify(manifest));

    const blob = path.join(work, 'sea.blob');
    const seaConfig = path.join(work, 'sea-config.json');
    fs.writeFileSync(
      seaConfig,
      JSON.stringify({
        main: mainScript,
        output: blob,
        disableExperimentalSEAWarning: true,
        useSnapshot: false,
        useCodeCache: false,
        assets,
      }),
    );
    execFileSync(process.execPath, ['--experimental-sea-config', seaConfig], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });

    const node = fs.realpathSync(process.execPath);
    if (fuseOffset(fs.readFileSync(node)) < 0)
      throw new Error(`${node} has no SEA fuse: it cannot become a single executable`);
    fs.copyFileSync(node, tmpOutput);
    fs.chmodSync(tmpOutput, 0o755);
    await inject(tmpOutput, 'NODE_SEA_BLOB', fs.readFileSync(blob), { sentinelFuse: SENTINEL_FUSE });
    fs.renameSync(tmpOutput, output);
    const size = fs.statSync(output).size;
    // By top-level name: node_modules/koffi/... and base/... count as one.
    const groups = new Map<string, number>();
    for (const f of files) {
      const group = f.name
        .split('/')
        .slice(0, f.name.startsWith('node_modules/') ? 2 : 1)
        .join('/');
      groups.set(group, (groups.get(group) ?? 0) + f.size);
    }
    const carried = [...groups].map(([name, size]) => `${name} ${mib(size)}`).join(', ');
    console.log(
      `${path.relative(root, output)}: ${mib(size)} (node ${mib(fs.statSync(node).size)}, SEA blob ${mib(fs.statSync(blob).size)}: main + ${carried})`,
    );
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(tmpOutput, { force: true });
  }
}

function sources(specs: FileSpec[], appDir: string): Array<{ name: string; from: string; gzip: boolean }> {
  const out: Array<{ name: string; from: string; gzip: boolean }> = [];
  for (const spec of specs) {
    if ('koffi' in spec) {
      // Laid out as node_modules, so require('koffi') from the extraction directory finds it.
      for (const pkg of locateKoffi(root).packages) {
        for (const file of koffiRuntimeFiles(pkg.dir)) {
          out.push({
            name: `node_modules/${pkg.name}/${path.relative(pkg.dir, file).split(path.sep).join('/')}`,
            from: file,
            gzip: file.endsWith('.node'),
          });
        }
      }
    } else if ('kernel' in spec) {
      // Builds the kernel once if it is not cached yet; its stdout is the vmlinux path.
      const vmlinux = execFileSync(path.join(root, 'tools/kernel/build'), {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      }).trim();
      out.push({ name: spec.name, from: mustExist(vmlinux), gzip: spec.gzip ?? false });
    } else if ('base' in spec) {
      out.push(...builtBase(spec.name));
    } else if ('busybox' in spec) {
      out.push({ name: spec.name, from: findStaticBusybox(), gzip: spec.gzip ?? false });
    } else {
      out.push({ name: spec.name, from: mustExist(path.join(appDir, spec.path)), gzip: spec.gzip ?? false });
    }
  }
  return out;
}

function builtBase(dir: string): Array<{ name: string; from: string; gzip: boolean }> {
  // Never built here (tools/base/build not run): the executable carries no base, and its bare VMs
  // say how to get one, as without a set-up.
  let record: string;
  try {
    record = execFileSync(path.join(root, 'tools/base/build'), ['--print-path'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    console.error('tools/sea/build: no Debian base built (tools/base/build): the executable carries none');
    return [];
  }
  const { layer } = JSON.parse(fs.readFileSync(record, 'utf8')) as { layer: string };
  return [
    { name: `${dir}/base.json`, from: record, gzip: false },
    // Already zstd.
    { name: `${dir}/${layer}`, from: mustExist(path.join(path.dirname(record), layer)), gzip: false },
  ];
}

function mustExist(file: string): string {
  if (!fs.existsSync(file)) throw new Error(`${file} does not exist: build the app first (npx nx build)`);
  return file;
}

function sha256(data: Buffer): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

main().catch((err: unknown) => {
  console.error(`tools/sea/build: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
