// koffi as it must sit beside the agent bundle: its JavaScript loader plus the native module for
// this platform, laid out as node_modules so the bundle's require('koffi') finds them.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { NotFoundError } from '@smolvm/common';

export interface KoffiFiles {
  /** Package directories to copy, by their name under node_modules. */
  packages: Array<{ name: string; dir: string }>;
  /** The native modules inside them (their libraries go into the image too). */
  natives: string[];
}

/** The directory of an installed package, found from its entry point (package.json may not be exported). */
function packageDir(fromFile: string, name: string): string {
  let dir = path.dirname(createRequire(fromFile).resolve(name));
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest) && (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: string }).name === name)
      return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json for ${name}`);
    dir = parent;
  }
}

export function locateKoffi(fromDir = __dirname): KoffiFiles {
  let koffiDir: string;
  try {
    koffiDir = packageDir(path.join(fromDir, 'x.js'), 'koffi');
  } catch (err) {
    throw new NotFoundError('the koffi package is not installed', {
      remedy: 'run npm install (or tools/setup)',
      cause: err,
    });
  }
  const platformName = `@koromix/koffi-${process.platform}-${process.arch}`;
  let platformDir: string | null = null;
  try {
    platformDir = packageDir(path.join(koffiDir, 'index.js'), platformName);
  } catch {
    // Older koffi releases ship the native module inside the package itself.
  }
  const packages = [{ name: 'koffi', dir: koffiDir }];
  if (platformDir) packages.push({ name: platformName, dir: platformDir });
  const natives = packages.flatMap((p) =>
    findFiles(p.dir, (f) => f.endsWith('.node') && !/musl|[\\/]src[\\/]/.test(path.relative(p.dir, f))),
  );
  if (natives.length === 0)
    throw new NotFoundError(`no koffi native module for ${process.platform}-${process.arch}`, {
      remedy: 'reinstall koffi (npm install)',
    });
  return { packages, natives };
}

export function findFiles(dir: string, keep: (file: string) => boolean): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...findFiles(p, keep));
    else if (entry.isFile() && keep(p)) out.push(p);
  }
  return out.sort();
}

/** The runtime files of a koffi package: loader JavaScript, manifests, native modules for glibc. */
export function koffiRuntimeFiles(dir: string): string[] {
  return findFiles(dir, (f) => {
    const rel = path.relative(dir, f);
    if (/^(vendor|doc|lib)[\\/]/.test(rel) || /(^|[\\/])musl/.test(rel)) return false;
    return /\.(c?js|json|node)$/.test(rel);
  });
}
