// `machine run -d` interrupted (Ctrl-C) before its supervisor runs: nothing is spawned and the
// record is removed again; once the supervisor runs, the caller hears of it (onSpawned).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Machines } from '../src';

let home: string;
let marker: string;
let machines: Machines;
const SMALL = { storageGiB: 1, overlayGiB: 1, cpus: 1, memoryMiB: 256 };

beforeEach(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-start-interrupt-'));
  marker = path.join(home, 'supervisor-ran');
  // A stand-in supervisor that leaves a mark and exits without a report.
  const script = `require('fs').writeFileSync(${JSON.stringify(marker)}, 'ran')`;
  machines = new Machines({
    env: { ...process.env, SMOLVM_HOME: home },
    supervisorArgv: [process.execPath, '-e', script, '--'],
  });
});
afterEach(() => fs.rmSync(home, { recursive: true, force: true }));

it('an abort before the spawn starts nothing and leaves no machine', async () => {
  const interrupt = new AbortController();
  interrupt.abort('SIGINT');
  const onSpawned = jest.fn();
  await expect(
    machines.runDetached({ name: 'intr', ...SMALL }, { signal: interrupt.signal, onSpawned }),
  ).rejects.toThrow('interrupted (SIGINT) before machine "intr" started');
  expect(onSpawned).not.toHaveBeenCalled();
  expect(fs.existsSync(marker)).toBe(false);
  expect(machines.store.list().machines).toEqual([]);
});

it('without an abort the supervisor is spawned and the caller told; a failed start is removed', async () => {
  const onSpawned = jest.fn();
  await expect(
    machines.runDetached({ name: 'intr', ...SMALL }, { signal: new AbortController().signal, onSpawned }),
  ).rejects.toThrow(/the supervisor exited .* before the machine was ready/);
  expect(onSpawned).toHaveBeenCalledTimes(1);
  expect(fs.readFileSync(marker, 'utf8')).toBe('ran');
  expect(machines.store.list().machines).toEqual([]);
});
