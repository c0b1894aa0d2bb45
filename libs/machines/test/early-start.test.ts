// The supervisor `machine start`'s loader spawns before the CLI has loaded (src/early-start.ts):
// only for a stopped machine whose lock is free and whose record is as its last start left it;
// Machines.start adopts it only if it is exactly the supervisor it would spawn, else ends it first.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tryAcquireLock } from '@smolvm/machine-store';
import { Machines } from '../src';
import { keepStartInvocation, startEarlySupervisor, takeEarlySupervisor } from '../src/early-start';

let home: string;
let marker: string;
let env: NodeJS.ProcessEnv;
let argv: string[];
const SMALL = { storageGiB: 1, overlayGiB: 1, cpus: 1, memoryMiB: 256 };

beforeEach(async () => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-early-sup-'));
  marker = path.join(home, 'spawned');
  env = { ...process.env, SMOLVM_HOME: home };
  // A stand-in supervisor: notes its pid, reports a started machine on fd 3, exits on the ack.
  const script = `
    const fs = require('fs');
    fs.appendFileSync(${JSON.stringify(marker)}, process.pid + '\\n');
    const c = new (require('net').Socket)({ fd: 3, readable: true, writable: true });
    c.write(JSON.stringify({ ok: true, pid: process.pid, startTime: null, socket: '/nonexistent.sock',
      vm: { pid: process.pid, startTime: null }, bootMs: 1, restored: true, notes: [] }) + '\\n');
    c.on('data', () => process.exit(0));
    c.on('end', () => process.exit(0));`;
  argv = [process.execPath, '-e', script, '--'];
  const machines = new Machines({ env, supervisorArgv: argv });
  await machines.create({ name: 'm', ...SMALL });
  // Its first start (no early supervisor yet) leaves start.json; then it is stopped.
  await machines.start('m');
  await stopped(machines);
});
afterEach(() => fs.rmSync(home, { recursive: true, force: true }));

async function stopped(machines: Machines): Promise<void> {
  await machines.store.update('m', (r) => ({
    ...r,
    ...(r.runtime ? { runtime: { ...r.runtime, stoppedAt: new Date().toISOString() } } : {}),
  }));
}

const spawned = () => fs.readFileSync(marker, 'utf8').trim().split('\n').map(Number);
const lockPath = (machines: Machines) => machines.store.lockPath('m');
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

it('is spawned under the lock and adopted by the start: one supervisor, the lock released after', async () => {
  const machines = new Machines({ env, supervisorArgv: argv });
  const early = startEarlySupervisor('m', argv, env);
  expect(early).toBeDefined();
  expect('release' in tryAcquireLock(lockPath(machines))).toBe(false);
  expect(takeEarlySupervisor('other')).toBeUndefined();
  expect(takeEarlySupervisor('m')).toBe(early);
  const result = await machines.start('m', { early });
  expect(result.alreadyRunning).toBe(false);
  expect(result.notes).toEqual([]);
  // No third spawn: the record names the early supervisor.
  expect(spawned()).toHaveLength(2);
  expect(result.record.runtime?.pid).toBe(early?.child.pid);
  const free = tryAcquireLock(lockPath(machines));
  expect('release' in free).toBe(true);
  if ('release' in free) free.release();
});

it('is ended before another is spawned when it is not the supervisor the start needs', async () => {
  const other = [...argv, 'changed'];
  const machines = new Machines({ env, supervisorArgv: other });
  const early = startEarlySupervisor('m', argv, env);
  expect(takeEarlySupervisor('m')).toBe(early);
  const pid = early?.child.pid ?? 0;
  const result = await machines.start('m', { ...(early ? { early } : {}) });
  expect(result.notes).toEqual(['the supervisor spawned early was not used (the arguments differed): started again']);
  // Killed (perhaps before it even noted its pid); the record names the one spawned after it.
  expect(alive(pid)).toBe(false);
  expect(result.record.runtime?.pid).not.toBe(pid);
  expect(spawned()).toContain(result.record.runtime?.pid);
  const free = tryAcquireLock(lockPath(machines));
  expect('release' in free).toBe(true);
  if ('release' in free) free.release();
});

it('is not spawned while another holds the lock, for a running, changed or ephemeral machine, or a planted start.json', async () => {
  const machines = new Machines({ env, supervisorArgv: argv });
  const none = () => {
    expect(startEarlySupervisor('m', argv, env)).toBeUndefined();
    expect(spawned()).toHaveLength(1);
  };
  const held = tryAcquireLock(lockPath(machines));
  if (!('release' in held)) throw new Error('lock not free');
  none();
  held.release();
  // Running: its record has a runtime without stoppedAt.
  await machines.store.update('m', (r) => ({ ...r, runtime: r.runtime && { ...r.runtime, stoppedAt: undefined } }));
  none();
  await stopped(machines);
  await machines.store.update('m', (r) => ({ ...r, cpus: 2 }));
  none();
  await machines.store.update('m', (r) => ({ ...r, cpus: 1 }));
  // An ephemeral machine (run -d) is never started again; its record is not last start's either.
  await machines.store.update('m', (r) => ({ ...r, ephemeral: true }));
  none();
  await machines.store.update('m', (r) => ({ ...r, ephemeral: undefined }));
  fs.chmodSync(path.join(machines.store.machineDir('m'), 'start.json'), 0o666);
  none();
  fs.chmodSync(path.join(machines.store.machineDir('m'), 'start.json'), 0o600);
  expect(startEarlySupervisor('m', argv, { ...env, SMOLVM_NO_EARLY_START: '1' })).toBeUndefined();
  // Every refusal left the lock free.
  const free = tryAcquireLock(lockPath(machines));
  expect('release' in free).toBe(true);
  if ('release' in free) free.release();
});

it("a machine's first start is early too when its creation kept the invocation (as `machine create` does)", async () => {
  const machines = new Machines({ env, supervisorArgv: argv });
  const record = await machines.create({ name: 'fresh', ...SMALL });
  expect(startEarlySupervisor('fresh', argv, env)).toBeUndefined();
  keepStartInvocation(machines.store.machineDir('fresh'), record, undefined);
  const early = startEarlySupervisor('fresh', argv, env);
  expect(early).toBeDefined();
  const result = await machines.start('fresh', { early });
  expect(result.notes).toEqual([]);
  expect(result.record.runtime?.pid).toBe(early?.child.pid);
  // m's first start in beforeEach, and this one: no second spawn for it.
  expect(spawned()).toHaveLength(2);
});
