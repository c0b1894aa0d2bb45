// Boot timings of driver-kvm with the conformance guest (informational, not a test):
//   node tools/run-ts.mjs libs/driver-kvm/bench/boot.ts [runs=7] [accel=tcg|kvm|auto]
// Prints medians of spawn -> start() resolved, -> guest READY, -> first command answered,
// -> VM ended after the guest's `reboot -f`.
import fs from 'node:fs';
import path from 'node:path';
import { LineAgent, prepareConformanceFixtures } from '@smolvm/driver-api/conformance';
import { createKvmDriver } from '@smolvm/driver-kvm';

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 7);
  const accel = (process.argv[3] ?? 'tcg') as 'tcg' | 'kvm' | 'auto';
  const fx = prepareConformanceFixtures();
  const driver = createKvmDriver({ accel });
  const probe = await driver.probe();
  if (!probe.available) throw new Error(`driver unavailable: ${probe.reason}`);
  const samples: Record<string, number[]> = { started: [], ready: [], firstCommand: [], ended: [] };
  try {
    for (let i = 0; i < runs; i++) {
      const dir = path.join(fx.workDir, `run${i}`);
      fs.mkdirSync(dir);
      const agent = await LineAgent.listen(path.join(dir, 'agent.sock'));
      try {
        const t0 = performance.now();
        const vm = await driver.start({
          kernel: fx.kernel,
          initrd: fx.initrd,
          cpus: 1,
          memoryMiB: 256,
          agent: { socketPath: agent.socketPath },
          consoleLog: path.join(dir, 'console.log'),
          runDir: path.join(dir, 'run'),
        });
        try {
          samples.started.push(performance.now() - t0);
          await agent.ready(60_000, vm.wait());
          samples.ready.push(performance.now() - t0);
          await agent.run('true');
          samples.firstCommand.push(performance.now() - t0);
          agent.send('reboot -f');
          const exit = await vm.wait();
          samples.ended.push(performance.now() - t0);
          if (exit.reason !== 'guest') throw new Error(`unexpected exit ${JSON.stringify(exit)}`);
        } finally {
          await vm.kill();
        }
      } finally {
        await agent.close();
      }
    }
  } finally {
    fs.rmSync(fx.workDir, { recursive: true, force: true });
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(`accelerator ${probe.accelerator}, ${runs} runs, 1 vCPU, 256 MiB, medians:`);
  for (const [name, xs] of Object.entries(samples))
    console.log(`  spawn -> ${name.padEnd(12)} ${Math.round(median(xs))} ms   (${xs.map(Math.round).join(', ')})`);
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
