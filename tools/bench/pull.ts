// Pull of a ~50 MB image from a local registry: @smolvm/oci against skopeo (copy to an OCI
// layout, which also verifies every digest) in the same run, interleaved, each in a fresh
// process and a fresh destination.
//   node tools/run-ts.mjs tools/bench/pull.ts [runs=5] [sizeMB=50]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ImageService, RegistryClient, RegistryConfig } from '@smolvm/oci';
import { startRegistry } from '../fixtures/registry';
import { bigImage, pushBuiltImage } from '../fixtures/images';
import { median, report, timeCommand, type Series } from './lib/stats';

/** One pull in this (child) process: the parent times the whole process, as it does skopeo. */
async function child(reference: string, home: string): Promise<void> {
  const service = new ImageService({ env: { SMOLVM_HOME: home }, config: RegistryConfig.fromSettings({}) });
  try {
    await service.pull(reference);
  } finally {
    await service.close();
  }
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 5);
  const sizeMB = Number(process.argv[3] ?? 50);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-bench-pull-'));
  const registry = await startRegistry({ dir: path.join(work, 'registry') });
  try {
    const image = bigImage(sizeMB);
    const bytes = image.layers.reduce((n, l) => n + l.bytes.length, image.config.length);
    const client = new RegistryClient({ config: RegistryConfig.fromSettings({}) });
    const { reference } = await pushBuiltImage(client, `${registry.host}/smolvm-test/big:latest`, image);
    await client.close();

    const ours: Series = { label: 'smolvm pull (node process)', samples: [] };
    const skopeo: Series = { label: 'skopeo copy -> oci layout', samples: [] };
    // Decomposes ours: the pull alone in this warm process, and the process start + module load.
    const inProcess: Series = { label: 'smolvm pull (in-process)', samples: [] };
    const startup: Series = { label: 'node start + @smolvm/oci load', samples: [] };
    let n = 0;
    const fresh = (): string => path.join(work, `dest-${n++}`);
    const runOurs = (): number => {
      const home = fresh();
      const ms = timeCommand([process.execPath, process.argv[1], '--child', reference, home]);
      fs.rmSync(home, { recursive: true, force: true });
      return ms;
    };
    const runSkopeo = (): number => {
      const dir = fresh();
      const ms = timeCommand([
        'skopeo',
        'copy',
        '--quiet',
        '--src-tls-verify=false',
        `docker://${reference}`,
        `oci:${dir}:big`,
      ]);
      fs.rmSync(dir, { recursive: true, force: true });
      return ms;
    };
    const runInProcess = async (): Promise<number> => {
      const home = fresh();
      const start = process.hrtime.bigint();
      await child(reference, home);
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      fs.rmSync(home, { recursive: true, force: true });
      return ms;
    };
    runOurs();
    runSkopeo();
    await runInProcess();
    for (let i = 0; i < runs; i++) {
      skopeo.samples.push(runSkopeo());
      ours.samples.push(runOurs());
      inProcess.samples.push(await runInProcess());
      startup.samples.push(timeCommand([process.execPath, process.argv[1], '--noop']));
    }
    report(
      `Pull of a ${(bytes / 1e6).toFixed(1)} MB image (${image.layers.length} gzip layers) from docker-registry on 127.0.0.1, ${runs} interleaved runs`,
      [skopeo, ours, inProcess, startup],
    );
    for (const s of [skopeo, ours, inProcess])
      console.log(`  ${s.label}: ${(bytes / 1e6 / (median(s.samples) / 1000)).toFixed(0)} MB/s (median)`);
    console.log(`  ratio smolvm/skopeo (time): ${(median(ours.samples) / median(skopeo.samples)).toFixed(2)}x`);
  } finally {
    await registry.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--noop') {
  // Modules are loaded by the bundle's top level already; nothing else to do.
} else if (process.argv[2] === '--child') {
  child(process.argv[3], process.argv[4]).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
