// A gateway alone in its own process, so its memory can be measured (adversarial-netmem.test.ts,
// tools/bench/net-flood.ts): run with `node tools/run-ts.mjs <this file> DIR [limits-json]`.
// It listens on DIR/net.sock with full outbound (the guest reaches the host's 127.0.0.1:PORT
// through 192.168.127.1:PORT), prints one JSON line {socketPath} when ready, then answers each
// `stats` line on stdin with {rss, peakRss, ...gateway.stats()} (bytes) and exits on `exit` or EOF.
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { startGateway, staticResolver } from '../../src';

/** Resident and peak resident set of this process (bytes), from /proc. */
function memory(): { rss: number; peakRss: number } {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const kib = (field: string): number =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
  return { rss: kib('VmRSS'), peakRss: kib('VmHWM') };
}

async function main(): Promise<void> {
  const [dir, limits] = process.argv.slice(2);
  const socketPath = path.join(dir, 'net.sock');
  const gw = await startGateway({
    policy: {},
    socketPath,
    resolver: staticResolver({}),
    limits: limits ? JSON.parse(limits) : undefined,
  });
  const out = (o: object): void => void process.stdout.write(`${JSON.stringify(o)}\n`);
  out({ socketPath });
  const stop = async (): Promise<void> => {
    await gw.close();
    process.exit(0);
  };
  const lines = readline.createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    if (line === 'stats') out({ ...memory(), ...gw.stats() });
    else if (line === 'exit') void stop();
  });
  lines.on('close', () => void stop());
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
