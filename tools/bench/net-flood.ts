// Memory of the process holding the network gateway while a hostile guest floods it (issue 14):
// raw frames written straight onto the gateway's stream socket, the gateway alone in a child
// process whose resident memory is read from /proc. Each scenario starts a fresh process; its
// idle RSS (after start-up) is the baseline of the same run, and the peak RSS (VmHWM) during the
// flood is compared with it. Scenarios: overlapping out-of-order segments, 64 KiB pings and
// MTU-sized pings/ARP/DNS with the NIC's receive side stalled, 4096 connections whose guest
// never acknowledges host data, 4096 connections filling their windows towards a host that
// never reads.
//   node tools/run-ts.mjs tools/bench/net-flood.ts [runs=3]
import { TcpFlags } from '../../libs/netpolicy/src/packets';
import {
  GatewayProcess,
  hostServers,
  HostileGuest,
  type HostServers,
  type ProcessStats,
} from '../../libs/netpolicy/test/helpers/hostile-guest';
import { median } from './lib/stats';

const runs = Number(process.argv[2] ?? 3);
const MiB = 1024 * 1024;

interface Scenario {
  label: string;
  flood(guest: HostileGuest, ports: HostServers): Promise<void>;
}

async function sendAll(guest: HostileGuest, total: number, make: (i: number) => Buffer, batch = 512): Promise<void> {
  for (let i = 0; i < total; i += batch) {
    const frames: Buffer[] = [];
    for (let j = i; j < Math.min(total, i + batch); j++) frames.push(make(j));
    await guest.send(frames);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const scenarios: Scenario[] = [
  {
    label: 'out-of-order, 64 conns x 8k overlapping segments',
    async flood(guest, ports) {
      const conns = await guest.open(64, ports.sink);
      const payload = Buffer.alloc(1460, 1);
      await sendAll(guest, conns.length * 8000, (i) => {
        const c = conns[i % conns.length];
        return guest.tcp(c, c.seq + 1 + Math.floor(i / conns.length), TcpFlags.ACK, payload);
      });
    },
  },
  {
    label: '64 KiB pings, receive side stalled (4000)',
    async flood(guest) {
      guest.stallReceive();
      await sendAll(guest, 4000, (i) => guest.ping(65000, i), 16);
    },
  },
  {
    label: 'pings/ARP/DNS, receive side stalled (300k)',
    async flood(guest) {
      guest.stallReceive();
      const kinds = [(i: number) => guest.ping(1472, i), () => guest.arpRequest(), (i: number) => guest.badDnsQuery(i)];
      await sendAll(guest, 300_000, (i) => kinds[i % 3](i));
    },
  },
  {
    label: '4096 conns, host sends, guest never ACKs',
    async flood(guest, ports) {
      await guest.open(4096, ports.source, 180_000);
      await sleep(10_000);
    },
  },
  {
    label: '4096 conns fill windows, host never reads',
    async flood(guest, ports) {
      const conns = await guest.open(4096, ports.sink, 180_000);
      const payload = Buffer.alloc(1460, 2);
      for (let round = 0; round < 20; round++) {
        if ((await guest.fillWindows(conns, payload)) === 0) break;
        await sleep(100);
      }
    },
  },
];

async function main(): Promise<void> {
  const ports = await hostServers();
  const results = scenarios.map(() => ({
    idle: [] as number[],
    peak: [] as number[],
    last: undefined as ProcessStats | undefined,
  }));
  try {
    for (let run = 0; run < runs; run++) {
      for (const [i, sc] of scenarios.entries()) {
        const gwp = await GatewayProcess.start();
        const guest = await HostileGuest.connect(gwp.socketPath);
        try {
          await sleep(500);
          const idle = await gwp.stats();
          await sc.flood(guest, ports);
          await sleep(1000);
          const after = await gwp.stats();
          results[i].idle.push(idle.rss);
          results[i].peak.push(after.peakRss);
          results[i].last = after;
        } finally {
          guest.close();
          await gwp.stop();
          ports.dropConnections();
        }
      }
    }
  } finally {
    await ports.close();
  }
  const mib = (n: number): string => `${(n / MiB).toFixed(0)} MiB`;
  console.log(
    `\nGateway process RSS under a hostile guest's flood; medians of ${runs} runs, each scenario in a fresh process`,
  );
  console.log('  idle = RSS after start-up (baseline of the same run); peak = VmHWM after the flood');
  const width = Math.max(...scenarios.map((s) => s.label.length));
  for (const [i, sc] of scenarios.entries()) {
    const r = results[i];
    const idle = median(r.idle);
    const peak = median(r.peak);
    console.log(
      `  ${sc.label.padEnd(width)}  idle ${mib(idle)}  peak ${mib(peak)}  growth ${mib(peak - idle)}  (${(peak / idle).toFixed(2)}x idle)`,
    );
  }
  console.log('\nCounters of the last run of each scenario:');
  for (const [i, sc] of scenarios.entries()) {
    const s = results[i].last;
    if (!s) continue;
    const {
      framesIn,
      framesOversize,
      framesOutDropped,
      segmentsDropped,
      connectionsRefused,
      tcpConnections,
      bufferedBytes,
    } = s;
    console.log(
      `  ${sc.label.padEnd(width)}  ${JSON.stringify({ framesIn, framesOversize, framesOutDropped, segmentsDropped, connectionsRefused, tcpConnections, bufferedBytes })}`,
    );
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
