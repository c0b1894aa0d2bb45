// Issue 14, item 7: another local user must not be able to make smolvm run anything through an
// early-start recipe (<cache>/prestart/<key>.json, read by the `smolvm` executable before the CLI
// loads). Each test plants a recipe the way such a user (or a lax umask) could and runs the
// loader's early start exactly as `smolvm machine run` does (prestartFor). The recipe's QEMU is a
// canary that writes a file: a refused recipe must never run it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ATTACKER, asAttacker, rootOnlyIt } from './localusers-helpers';
import { dropPrivilegeArgs } from '@smolvm/driver-kit';
import type { PrestartedQemu } from '@smolvm/qemu/prestart';
import { discardParts } from '@smolvm/runtime/prestart';
import { invocationKey, prestartFor, recipeFile, takePrestarted } from '../../src/prestart';

const rootOnly = rootOnlyIt('localusers-prestart');

const ARGS = ['machine', 'run', '--cpus', '1', '--', 'true'];
const bundle = path.join(__dirname, '..', '..', 'dist', 'smolvm-main.js');

let tmp: string;
let home: string;
let cache: string;
let bin: string;
let marker: string;
let env: NodeJS.ProcessEnv;

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-localusers-'));
  home = path.join(tmp, 'home');
  cache = path.join(home, 'cache');
  bin = path.join(tmp, 'bin');
  marker = path.join(tmp, 'canary-ran');
  fs.mkdirSync(path.join(tmp, 'run'), { mode: 0o700 });
  fs.mkdirSync(bin, { mode: 0o700 });
  // The QEMU this user's PATH resolves: a canary. setpriv is the real one, which execs it.
  writeCanary(path.join(bin, 'qemu-system-x86_64'));
  env = { PATH: `${bin}:/usr/bin:/bin`, SMOLVM_HOME: home, XDG_RUNTIME_DIR: path.join(tmp, 'run'), HOME: tmp };
  fs.mkdirSync(path.join(cache, 'prestart'), { recursive: true, mode: 0o700 });
  fs.mkdirSync(path.join(home, 'snap'), { mode: 0o700 });
  fs.writeFileSync(path.join(home, 'snap', 'state'), 'state', { mode: 0o600 });
  fs.writeFileSync(path.join(home, 'snap', 'memory'), Buffer.alloc(4096), { mode: 0o600 });
});

afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function writeCanary(file: string): void {
  fs.writeFileSync(file, `#!/bin/sh\necho "$0" >> '${marker}'\n`, { mode: 0o755 });
}

/** A recipe of the shape recipeFor (libs/qemu/src/snapshot.ts) writes, for a run dir `runDir`. */
function recipe(overrides: Record<string, unknown> = {}, runDir = '/run/smolvm/vm-old'): string {
  const restore = {
    file: '/usr/bin/setpriv',
    args: [
      '--pdeathsig',
      'KILL',
      ...dropPrivilegeArgs(),
      '--',
      path.join(bin, 'qemu-system-x86_64'),
      '-chardev',
      `socket,id=qmp,path=${runDir}/driver/qmp.sock`,
    ],
    runDir,
    driverDir: `${runDir}/driver`,
    qmpSocket: `${runDir}/driver/qmp.sock`,
    consoleLog: `${runDir}/console.log`,
    stateFile: path.join(home, 'snap', 'state'),
    memoryFile: path.join(home, 'snap', 'memory'),
    memoryBytes: 4096,
    ...overrides,
  };
  return JSON.stringify({ v: 1, driver: 'kvm', restore }) + '\n';
}

const recipePath = () => recipeFile(cache, invocationKey(ARGS, process.cwd(), env, bundle));

/** What `smolvm machine run` does before loading the CLI; resolves once whatever it started has exited. */
async function earlyStart(): Promise<'started' | 'refused'> {
  prestartFor(ARGS, cache, bundle, env);
  const parts = takePrestarted()?.take();
  if (!parts) return 'refused';
  try {
    await (parts.restore as PrestartedQemu).failed;
  } finally {
    discardParts(parts);
  }
  return 'started';
}

const canaryRan = () => fs.existsSync(marker);

/** The early start, and whether the canary ran: one assertion shows both. */
async function attempt(): Promise<{ earlyStart: string; canaryRan: boolean }> {
  const outcome = await earlyStart();
  return { earlyStart: outcome, canaryRan: canaryRan() };
}
const REFUSED = { earlyStart: 'refused', canaryRan: false };

describe('early-start recipes another user could have written are refused and never run', () => {
  it('control: the own recipe of this user runs (so the canary can tell)', async () => {
    fs.writeFileSync(recipePath(), recipe(), { mode: 0o600 });
    expect(await attempt()).toEqual({ earlyStart: 'started', canaryRan: true });
  });

  rootOnly('a recipe planted by another user', async () => {
    fs.writeFileSync(recipePath(), recipe(), { mode: 0o600 });
    fs.chownSync(recipePath(), ATTACKER, ATTACKER);
    expect(await attempt()).toEqual(REFUSED);
  });

  it('a recipe others can write', async () => {
    fs.writeFileSync(recipePath(), recipe(), { mode: 0o600 });
    fs.chmodSync(recipePath(), 0o666);
    expect(await attempt()).toEqual(REFUSED);
  });

  rootOnly('a symlink another user put in a shared SMOLVM_HOME, to a file of this user', async () => {
    // The home is shared (0777); the attacker made cache/prestart before this user ran smolvm.
    fs.rmSync(cache, { recursive: true });
    fs.chmodSync(home, 0o777);
    fs.chmodSync(tmp, 0o755);
    const lure = path.join(home, 'snap', 'notes.json');
    fs.writeFileSync(lure, recipe(), { mode: 0o600 });
    asAttacker(`mkdir -p '${path.dirname(recipePath())}' && ln -s '${lure}' '${recipePath()}'`);
    expect(fs.lstatSync(recipePath()).uid).toBe(ATTACKER);
    expect(await attempt()).toEqual(REFUSED);
  });

  it('an own recipe in a directory others can write (a lax umask, a shared home): anyone could have swapped it', async () => {
    fs.chmodSync(path.dirname(recipePath()), 0o777);
    fs.writeFileSync(recipePath(), recipe(), { mode: 0o600 });
    expect(await attempt()).toEqual(REFUSED);
  });

  rootOnly('an own recipe in a directory of another user', async () => {
    fs.writeFileSync(recipePath(), recipe(), { mode: 0o600 });
    fs.chownSync(cache, ATTACKER, ATTACKER);
    expect(await attempt()).toEqual(REFUSED);
  });

  it('a program outside the set smolvm resolves itself (trusted by its name before)', async () => {
    const elsewhere = path.join(tmp, 'elsewhere', 'bin');
    fs.mkdirSync(elsewhere, { recursive: true });
    writeCanary(path.join(elsewhere, 'setpriv'));
    fs.writeFileSync(recipePath(), recipe({ file: path.join(elsewhere, 'setpriv') }), { mode: 0o600 });
    expect(await attempt()).toEqual(REFUSED);
  });

  it('setpriv told to run something other than QEMU', async () => {
    const other = path.join(tmp, 'elsewhere', 'bin', 'qemu-system-x86_64');
    fs.mkdirSync(path.dirname(other), { recursive: true });
    writeCanary(other);
    fs.writeFileSync(recipePath(), recipe({ args: ['--pdeathsig', 'KILL', '--', other] }), { mode: 0o600 });
    expect(await attempt()).toEqual(REFUSED);
  });

  it('a per-run path that leaves the run directory through `..` (it passed the prefix check)', async () => {
    const victim = path.join(tmp, 'precious.txt');
    fs.writeFileSync(victim, 'keep me\n');
    // The early start puts its own run dir, <tmp>/run/smolvm/vm-XXXXXX, in place of runDir.
    const runDir = '/run/smolvm/vm-old';
    const escape = `${runDir}/../../../precious.txt`;
    expect(escape.startsWith(runDir + '/')).toBe(true);
    fs.writeFileSync(recipePath(), recipe({ consoleLog: escape }, runDir), { mode: 0o600 });
    expect({ ...(await attempt()), victim: fs.readFileSync(victim, 'utf8') }).toEqual({
      ...REFUSED,
      victim: 'keep me\n',
    });
  });
});
