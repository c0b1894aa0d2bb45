// Early restores (src/prestart.ts): recipes are checked before anything is started from them,
// a prestart writes the restore commands to the process's stdin at once and hands over QEMU's
// QMP connection, and discard leaves nothing. A stand-in program plays QEMU here; the real one
// is exercised end to end by the CLI's warm-start tests.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  parseQemuRestoreRecipe,
  prestartQemuRestore,
  recipeCommand,
  recipeIn,
  restoreScript,
  type QemuRestoreRecipe,
} from '../src/prestart';
import { dropPrivilegeArgs } from '@smolvm/driver-kit';
import { isRunning, tempDir, waitUntil } from './helpers';

let dir: string;
beforeEach(() => (dir = tempDir('smolvm-prestart-')));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function recipe(over: Partial<QemuRestoreRecipe> = {}): QemuRestoreRecipe {
  const run = '/run/smolvm/vm-abc';
  return {
    file: '/usr/bin/setpriv',
    // What pdeathsigCommand builds: setpriv's own options, then QEMU.
    args: [
      '--pdeathsig',
      'KILL',
      ...dropPrivilegeArgs(),
      '--',
      '/usr/bin/qemu-system-x86_64',
      '-chardev',
      `socket,id=agent,path=${run}/agent.sock`,
      '-chardev',
      `socket,id=qmp,path=${run}/driver/qmp.sock`,
    ],
    runDir: run,
    driverDir: `${run}/driver`,
    qmpSocket: `${run}/driver/qmp.sock`,
    consoleLog: `${run}/console.log`,
    stateFile: '/cache/vmsnap/k/state',
    memoryFile: '/cache/vmsnap/k/memory',
    memoryBytes: 256 * 1024 * 1024,
    ...over,
  };
}

describe('recipes', () => {
  it('accepts a well-formed recipe and rewrites only the run directory', () => {
    const r = recipe();
    expect(parseQemuRestoreRecipe(JSON.parse(JSON.stringify(r)))).toEqual(r);
    const moved = recipeCommand(r, '/run/smolvm/vm-xyz');
    expect(moved.file).toBe(r.file);
    expect(moved.args.slice(0, 4)).toEqual(r.args.slice(0, 4));
    expect(moved.args).toContain('socket,id=agent,path=/run/smolvm/vm-xyz/agent.sock');
    expect(moved.args.join(' ')).not.toContain('vm-abc');
  });

  it('refuses anything but setpriv or QEMU, relative paths, per-run paths outside the run directory, odd values', () => {
    for (const bad of [
      { file: '/bin/sh' },
      { file: '/usr/bin/touch' },
      { file: 'setpriv' },
      { stateFile: 'state' },
      { qmpSocket: '/elsewhere/qmp.sock' },
      { consoleLog: '/run/smolvm/vm-abcdef/console.log' },
      { args: ['-x', 3] as unknown as string[] },
      { memoryBytes: -1 },
      { memoryBytes: 1.5 },
    ]) {
      expect([bad, parseQemuRestoreRecipe({ ...recipe(), ...bad })]).toEqual([bad, undefined]);
    }
    expect(parseQemuRestoreRecipe(null)).toBeUndefined();
    expect(parseQemuRestoreRecipe('recipe')).toBeUndefined();
  });

  it('recipeIn names the directory the per-run paths are in, and refuses one they are not in', () => {
    const r = recipe({ runDir: '/run/smolvm/vm-abc/driver' });
    expect(recipeIn(r, '/run/smolvm/vm-abc')?.runDir).toBe('/run/smolvm/vm-abc');
    expect(recipeIn(r, '/run/smolvm/vm-abc/driver')).toBeUndefined();
    expect(recipeIn(r, '/run')).toBeUndefined();
  });

  it('the restore script sets x-ignore-shared before loading the state from the inherited fd 3, never exec:', () => {
    const lines = restoreScript()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { execute: string; arguments?: { uri?: string } });
    expect(lines.map((l) => l.execute)).toEqual(['qmp_capabilities', 'migrate-set-capabilities', 'migrate-incoming']);
    expect(lines[2].arguments?.uri).toBe('fd:3');
    expect(restoreScript()).not.toContain('exec:');
  });

  it('with run, a cont follows the load (QEMU then runs the guest once its state is in, not paused under -S)', () => {
    const ops = (script: string) =>
      script
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { execute: string }).execute);
    expect(ops(restoreScript({ run: true }))).toEqual([
      'qmp_capabilities',
      'migrate-set-capabilities',
      'migrate-incoming',
      'cont',
    ]);
    expect(ops(restoreScript({ run: false }))).not.toContain('cont');
  });
});

describe('prestartQemuRestore', () => {
  // Plays QEMU: connects to the QMP socket its arguments name, sends what it reads on fd 3 (the
  // device state) and copies its stdin there, then waits.
  const FAKE = `
const net = require('net');
const sock = process.argv.find((a) => a.startsWith('qmp=')).slice(4);
const state = require('fs').readFileSync(3, 'utf8');
const c = net.connect(sock, () => { c.write('fd3=' + state + '\\n'); process.stdin.pipe(c); });
setInterval(() => {}, 1000);
`;

  function fakeRecipe(run: string): QemuRestoreRecipe {
    fs.writeFileSync(path.join(dir, 'memory'), Buffer.alloc(4096));
    fs.writeFileSync(path.join(dir, 'state'), 'state');
    return recipe({
      file: process.execPath,
      args: ['-e', FAKE, '--', `qmp=${run}/driver/qmp.sock`],
      runDir: run,
      driverDir: `${run}/driver`,
      qmpSocket: `${run}/driver/qmp.sock`,
      consoleLog: `${run}/console.log`,
      stateFile: path.join(dir, 'state'),
      memoryFile: path.join(dir, 'memory'),
      memoryBytes: 4096,
    });
  }

  it('starts the process in the new run directory, feeds it the restore commands at once, hands over QMP', async () => {
    const run = path.join(dir, 'run-new');
    fs.mkdirSync(run);
    const pre = prestartQemuRestore(fakeRecipe(path.join(dir, 'run-old')), run);
    try {
      expect(pre.args).toContain(`qmp=${run}/driver/qmp.sock`);
      expect(fs.readFileSync(path.join(run, 'console.log'), 'utf8')).toBe('');
      const conn = await pre.qmpConnection;
      let received = '';
      conn.setEncoding('utf8');
      conn.on('data', (d: string) => (received += d));
      expect(await waitUntil(() => received.split('\n').length > 4, 10_000)).toBe(true);
      expect(received).toBe('fd3=state\n' + restoreScript());
      // The socket file goes once the process connected.
      expect(fs.existsSync(path.join(run, 'driver', 'qmp.sock'))).toBe(false);
    } finally {
      pre.discard();
    }
    const pid = pre.child?.pid as number;
    expect(await waitUntil(() => !isRunning(pid), 5_000)).toBe(true);
  });

  it('starts nothing when the snapshot it names was cut short or replaced, and says why', async () => {
    const run = path.join(dir, 'run-new');
    fs.mkdirSync(run);
    const r = fakeRecipe(path.join(dir, 'run-old'));
    fs.truncateSync(r.memoryFile, 100);
    const pre = prestartQemuRestore(r, run);
    expect(pre.child).toBeUndefined();
    expect(await pre.failed).toMatch(/not the snapshot's RAM file/);
    pre.discard();
  });

  it('a process that dies before it is taken over is reported', async () => {
    const run = path.join(dir, 'run-new');
    fs.mkdirSync(run);
    const r = { ...fakeRecipe(path.join(dir, 'run-old')), args: ['-e', 'process.exit(3)'] };
    const pre = prestartQemuRestore(r, run);
    expect(await pre.failed).toBe('QEMU exited with status 3');
    pre.discard();
    expect(fs.existsSync(path.join(run, 'driver', 'qmp.sock'))).toBe(false);
  });

  it('discard before QEMU connected closes the socket and ends the process', async () => {
    const run = path.join(dir, 'run-new');
    fs.mkdirSync(run);
    const r = { ...fakeRecipe(path.join(dir, 'run-old')), args: ['-e', 'setInterval(() => {}, 1000)'] };
    const pre = prestartQemuRestore(r, run);
    const pid = pre.child?.pid as number;
    expect(isRunning(pid)).toBe(true);
    pre.discard();
    expect(await waitUntil(() => !isRunning(pid), 5_000)).toBe(true);
    expect(fs.existsSync(path.join(run, 'driver', 'qmp.sock'))).toBe(false);
    await expect(
      new Promise((resolve, reject) =>
        net
          .connect(path.join(run, 'driver', 'qmp.sock'))
          .on('connect', resolve)
          .on('error', reject),
      ),
    ).rejects.toThrow();
  });
});
