// Every external program the code starts must be on tools/host-requirements.txt, the list tools/setup
// installs and checks: a program that is only on the machine it was written on fails on a fresh one.
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(__dirname, '..', '..');
const SKIP_DIRS = new Set(['node_modules', 'dist', '.test-results', '.nx', 'coverage']);
// Sources that never run on a Linux host: the guest agent runs inside the guest, driver-hvf on macOS.
const NOT_LINUX_HOST = [
  path.join('apps', 'guest-agent', 'src'),
  path.join('libs', 'driver-hvf', 'src'),
  path.join('tools', 'tests', 'host-requirements.test.ts'),
];

// Calls whose first argument names the program: child_process, executable lookups, and the test
// helpers that run a program (in a network namespace, timed by a benchmark).
const LAUNCHES = [
  /\b(?:spawn|spawnSync|execFile|execFileSync|execSync|findExecutable|hasTool)\(\s*(['"`])([^'"`$]+?)\1/g,
  /\.exec\(\s*(['"`])([^'"`$\s]+)\1\s*,\s*\[/g,
  /\btimeCommand\(\s*\[\s*(['"`])([^'"`$]+?)\1/g,
];

function readRequirements(file = path.join(root, 'tools', 'host-requirements.txt')): Map<string, string> {
  const entries = new Map<string, string>();
  for (const [i, raw] of fs.readFileSync(file, 'utf8').split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [what, pkg] = line.split(/\s+/);
    if (!pkg) throw new Error(`${file}:${i + 1}: "${line}" names no package`);
    if (entries.has(what)) throw new Error(`${file}:${i + 1}: ${what} is listed twice`);
    entries.set(what, pkg);
  }
  return entries;
}

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (SKIP_DIRS.has(entry.name)) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) sourceFiles(full, out);
    else if (/\.(ts|js|mjs|cjs)$/.test(entry.name)) out.push(full);
  }
  return out;
}

/** Program name -> files that start it. */
function launchedPrograms(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const files = ['apps', 'libs', 'tools'].flatMap((top) => sourceFiles(path.join(root, top)));
  for (const file of files) {
    const rel = path.relative(root, file);
    if (NOT_LINUX_HOST.some((prefix) => rel.startsWith(prefix))) continue;
    const text = fs.readFileSync(file, 'utf8');
    for (const pattern of LAUNCHES) {
      for (const match of text.matchAll(pattern)) {
        const program = path.basename(match[2].trim().split(/\s+/)[0]);
        if (program === '' || program === 'node') continue;
        found.set(program, [...(found.get(program) ?? []), rel]);
      }
    }
  }
  return found;
}

const requirements = readRequirements();
const commands = new Set([...requirements.keys()].filter((what) => !what.startsWith('/')));

it('finds the programs the code is known to start (the scan itself works)', () => {
  const found = launchedPrograms();
  for (const program of ['cpio', 'qemu-system-x86_64', 'mkfs.erofs', 'ip', 'ssh-agent', 'skopeo']) {
    expect([program, found.has(program)]).toEqual([program, true]);
  }
});

it('every program the code starts is on tools/host-requirements.txt', () => {
  const unlisted = [...launchedPrograms()]
    .filter(([program]) => !commands.has(program))
    .map(([program, files]) => `${program} (started in ${[...new Set(files)].join(', ')})`);
  expect(unlisted).toEqual([]);
});

it('the list names a Debian package for every entry, and tools/setup installs from it', () => {
  expect(requirements.size).toBeGreaterThan(10);
  for (const pkg of requirements.values()) expect(pkg).toMatch(/^[a-z0-9][a-z0-9.+-]+$/);
  const setup = fs.readFileSync(path.join(root, 'tools', 'setup'), 'utf8');
  expect(setup).toContain('tools/host-requirements.txt');
});
