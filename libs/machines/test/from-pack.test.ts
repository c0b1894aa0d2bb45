// Machines made from a pack whose guest runs on the packed executable's Node (format version 4),
// without a VM: the runtime is copied into the section cache when the machine is made, so it
// boots without the executable, and is imported again from it (or a file named) if the cache lost it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { NotFoundError, smolvmDirs } from '@smolvm/common';
import { PackFile, assemblePack, type SectionName } from '@smolvm/pack/local';
import { Machines, machinePackBoot } from '../src';
import { testManifest } from '../../pack/test/helpers/manifest';

jest.setTimeout(60_000);

const base = testManifest({ smolvm_version: '0.0.0-test', storage_gib: 1, overlay_gib: 1 });
// A stand-in for the stub executable: whole blocks and a tail the runtime leaves out.
const stub = crypto.randomBytes(3 * 4096 + 77);
const size = 3 * 4096;
const runtime = { size, sha256: crypto.createHash('sha256').update(stub.subarray(0, size)).digest('hex') };
const sections: Record<string, Buffer> = { kernel: crypto.randomBytes(9000), agent: crypto.randomBytes(20_000) };

let home: string;
let machines: Machines;
let cacheDir: string;
beforeEach(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-frompack-'));
  const env = { ...process.env, SMOLVM_HOME: home };
  machines = new Machines({ env });
  cacheDir = smolvmDirs(env).cache;
});
afterEach(() => fs.rmSync(home, { recursive: true, force: true }));

/** `app` beside `app.smolmachine`, as `pack create` writes them. */
async function packWithRuntime(): Promise<{ exe: string; pack: PackFile }> {
  const exe = path.join(home, 'app');
  fs.writeFileSync(exe, stub, { mode: 0o755 });
  await assemblePack({
    output: `${exe}.smolmachine`,
    manifest: base,
    sections: (['kernel', 'agent'] as SectionName[]).map((name) => ({
      name,
      open: () => Readable.from([sections[name]]),
    })),
    runtime,
  });
  return { exe, pack: PackFile.open(`${exe}.smolmachine`) };
}

it('copies the runtime into the cache when made, boots it from there, and imports it again if the cache lost it', async () => {
  const { exe, pack } = await packWithRuntime();
  const record = await machines.createFromPack(
    { name: 'm', storageGiB: 1, overlayGiB: 1, cpus: 1, memoryMiB: 256 },
    pack,
  );
  const cached = path.join(cacheDir, 'pack', 'sections', runtime.sha256);
  expect(fs.readFileSync(cached).equals(stub.subarray(0, size))).toBe(true);
  // The machine no longer needs the executable the pack came with.
  fs.rmSync(exe);
  const packJson = machines.files('m').pack;
  const boot = await machinePackBoot(packJson, cacheDir, record.from!);
  expect(boot.packed.runtime).toEqual({ path: cached, sha256: runtime.sha256 });

  // The cache lost it, and the executable is gone: one line; a file the caller names brings it back.
  fs.rmSync(cached);
  await expect(machinePackBoot(packJson, cacheDir, record.from!)).rejects.toThrow(NotFoundError);
  const elsewhere = path.join(home, 'smolvm-stub');
  fs.writeFileSync(elsewhere, stub, { mode: 0o755 });
  expect((await machinePackBoot(packJson, cacheDir, record.from!, [elsewhere])).packed.runtime?.path).toBe(cached);
  expect(fs.readFileSync(cached).equals(stub.subarray(0, size))).toBe(true);
});

it('is made from a runtime the caller names when the executable is not beside the pack, and refused without', async () => {
  const { exe, pack } = await packWithRuntime();
  const elsewhere = path.join(home, 'smolvm-stub');
  fs.renameSync(exe, elsewhere);
  const input = { name: 'm', storageGiB: 1, overlayGiB: 1, cpus: 1, memoryMiB: 256 };
  await expect(machines.createFromPack(input, pack)).rejects.toThrow(NotFoundError);
  expect(machines.store.list()).toEqual({ machines: [], skipped: [] });
  await machines.createFromPack(input, pack, { runtimeCandidates: [elsewhere] });
  const boot = await machinePackBoot(machines.files('m').pack, cacheDir, pack.path);
  expect(boot.packed.runtime?.path).toBe(path.join(cacheDir, 'pack', 'sections', runtime.sha256));
});
