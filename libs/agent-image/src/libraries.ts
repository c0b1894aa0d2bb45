// The shared libraries a set of host programs load, resolved the way ld.so would on this host
// (RUNPATH, then the ld.so.conf and default directories), so they can be copied into the agent
// image at the same paths. Libraries are found by walking DT_NEEDED, not by running ldd: ldd
// executes the loader on the binary, and its output format differs between libcs.
import fs from 'node:fs';
import path from 'node:path';
import { NotFoundError } from '@smolvm/common';
import { readElf } from './elf';

const DEFAULT_DIRS = [
  '/lib/x86_64-linux-gnu',
  '/usr/lib/x86_64-linux-gnu',
  '/lib/aarch64-linux-gnu',
  '/usr/lib/aarch64-linux-gnu',
  '/lib64',
  '/usr/lib64',
  '/lib',
  '/usr/lib',
];

function ldSoConfDirs(file = '/etc/ld.so.conf', depth = 0): string[] {
  if (depth > 4) return [];
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const dirs: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const include = /^include\s+(.+)$/.exec(line);
    if (!include) {
      dirs.push(line);
      continue;
    }
    // Only the `dir/*.conf` form is used in practice.
    const pattern = path.resolve(path.dirname(file), include[1]);
    const dir = path.dirname(pattern);
    const suffix = path.basename(pattern).replace(/^\*/, '');
    let names: string[] = [];
    try {
      names = fs
        .readdirSync(dir)
        .filter((n) => n.endsWith(suffix))
        .sort();
    } catch {
      // no such directory
    }
    for (const n of names) dirs.push(...ldSoConfDirs(path.join(dir, n), depth + 1));
  }
  return dirs;
}

export interface ResolvedLibraries {
  /** Path the loader looks up -> file with the bytes (symlinks resolved). */
  files: Map<string, string>;
  /** The program interpreter (ld-linux), which must sit at exactly this path. */
  interpreter: string | null;
  /** Directories holding the libraries, for LD_LIBRARY_PATH in the guest. */
  dirs: string[];
}

export function resolveLibraries(programs: string[]): ResolvedLibraries {
  const searchDirs = [...new Set([...ldSoConfDirs(), ...DEFAULT_DIRS])];
  const files = new Map<string, string>();
  const dirs = new Set<string>();
  let interpreter: string | null = null;
  const queue: Array<{ file: string; origin: string }> = programs.map((p) => ({ file: p, origin: path.dirname(p) }));
  const done = new Set<string>();
  let machine: number | null = null;
  while (queue.length) {
    const { file } = queue.shift() as { file: string; origin: string };
    const real = fs.realpathSync(file);
    if (done.has(real)) continue;
    done.add(real);
    const elf = readElf(real);
    if (!elf) throw new Error(`${file} is not a 64-bit ELF file`);
    machine ??= elf.machine;
    if (elf.interpreter && !interpreter) interpreter = elf.interpreter;
    const origin = path.dirname(file);
    const runpath = elf.runpath.map((p) => p.replace(/\$\{?ORIGIN\}?/g, origin));
    for (const name of elf.needed) {
      const found = [...runpath, ...searchDirs]
        .map((d) => path.join(d, name))
        .find((candidate) => {
          if (!fs.existsSync(candidate)) return false;
          return readElf(fs.realpathSync(candidate))?.machine === machine;
        });
      if (!found) throw new NotFoundError(`${name}, needed by ${file}, is not in ${searchDirs.join(':')}`);
      if (!files.has(found)) {
        files.set(found, fs.realpathSync(found));
        dirs.add(path.dirname(found));
        queue.push({ file: found, origin: path.dirname(found) });
      }
    }
  }
  if (interpreter) files.set(interpreter, fs.realpathSync(interpreter));
  return { files, interpreter, dirs: [...dirs] };
}
