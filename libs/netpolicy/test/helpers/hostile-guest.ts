// A hostile "guest" for memory tests and tools/bench/net-flood.ts: raw frames written straight
// onto the gateway's stream socket (no well-behaved kernel in between), plus the gateway in a
// process of its own (gateway-process.ts) whose resident memory is what gets measured.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import type { GatewayLimits, GatewayStats } from '../../src';
import { FrameDecoder, lengthPrefix } from '../../src/link';
import {
  buildArp,
  buildIcmp,
  buildIpv4Frames,
  buildTcpFrame,
  buildUdp,
  ETHERTYPE_IPV4,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  ipv4ToNumber,
  parseEthernet,
  parseIpv4,
  parseMac,
  parseTcp,
  TcpFlags,
} from '../../src/packets';

export const GUEST_MAC = parseMac('52:54:00:12:34:56');
export const GW_MAC = parseMac('52:54:00:12:34:01');
export const GUEST = ipv4ToNumber('192.168.127.2');
export const GW = ipv4ToNumber('192.168.127.1');

const WORKSPACE = process.env.SMOLVM_WORKSPACE ?? path.resolve(__dirname, '../../../..');

export interface ProcessStats extends GatewayStats {
  rss: number;
  peakRss: number;
}

/** The gateway in a child process (killed with its stdin: no orphan survives the parent). */
export class GatewayProcess {
  private constructor(
    private readonly child: ChildProcessByStdio<Writable, Readable, null>,
    private readonly lines: AsyncIterator<string>,
    private readonly dir: string,
    readonly socketPath: string,
  ) {}

  static async start(limits?: Partial<GatewayLimits>): Promise<GatewayProcess> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netmem-'));
    const script = path.join(WORKSPACE, 'libs/netpolicy/test/helpers/gateway-process.ts');
    const args = [path.join(WORKSPACE, 'tools/run-ts.mjs'), script, dir, ...(limits ? [JSON.stringify(limits)] : [])];
    const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const first = await lines.next();
    if (first.done) throw new Error('the gateway process exited before it was ready');
    return new GatewayProcess(child, lines, dir, (JSON.parse(first.value) as { socketPath: string }).socketPath);
  }

  async stats(): Promise<ProcessStats> {
    this.child.stdin.write('stats\n');
    const line = await this.lines.next();
    if (line.done) throw new Error('the gateway process exited');
    return JSON.parse(line.value) as ProcessStats;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.stdin.end('exit\n');
      await exited;
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** One TCP connection as the hostile guest sees it. */
export interface RawConn {
  guestPort: number;
  hostPort: number;
  /** Our next sequence number. */
  seq: number;
  /** The gateway's next sequence number (what we acknowledge). */
  ack: number;
  /** Right edge of the gateway's advertised window (its ack + window << scale). */
  edge: number;
  /** The gateway's window scale (from its SYN-ACK). */
  scale: number;
  established: boolean;
}

const WSCALE = 7;

/** Host-side peers on 127.0.0.1: `sink` accepts and never reads, `source` sends as fast as it is read. */
export interface HostServers {
  sink: number;
  source: number;
  /** Ends every accepted connection. */
  dropConnections(): void;
  close(): Promise<void>;
}

export async function hostServers(): Promise<HostServers> {
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  const listen = async (server: net.Server): Promise<number> => {
    servers.push(server);
    server.on('connection', (s) => {
      sockets.add(s);
      s.on('error', () => undefined).on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return (server.address() as net.AddressInfo).port;
  };
  const block = Buffer.alloc(65536, 0x62);
  const source = (s: net.Socket): void => {
    const pump = (): void => {
      while (!s.destroyed && s.write(block));
    };
    s.on('drain', pump);
    pump();
  };
  const dropConnections = (): void => {
    for (const s of sockets) s.destroy();
  };
  return {
    // Paused on connect: data stays in the kernel, nothing is read into this process.
    sink: await listen(net.createServer({ pauseOnConnect: true })),
    source: await listen(net.createServer(source)),
    dropConnections,
    async close() {
      dropConnections();
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    },
  };
}

export class HostileGuest {
  readonly conns = new Map<number, RawConn>();
  private readonly decoder = new FrameDecoder();
  private nextPort = 10000;
  private drained?: Promise<void>;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const f of this.decoder.push(chunk)) this.onFrame(f);
    });
    socket.on('error', () => undefined);
  }

  static async connect(socketPath: string): Promise<HostileGuest> {
    const socket = net.connect(socketPath);
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    return new HostileGuest(socket);
  }

  /** Stops reading the link: the NIC's receive side is stalled, frames for the guest pile up. */
  stallReceive(): void {
    this.socket.pause();
  }

  /** Writes frames, waiting for the socket to drain (the gateway reads at its own pace). */
  async send(frames: Buffer[]): Promise<void> {
    const parts: Buffer[] = [];
    for (const f of frames) parts.push(lengthPrefix(f.length), f);
    if (!this.socket.write(Buffer.concat(parts))) {
      this.drained ??= new Promise<void>((r) => this.socket.once('drain', () => r())).finally(
        () => (this.drained = undefined),
      );
      await this.drained;
    }
  }

  /**
   * Opens `count` connections to the host's 127.0.0.1:hostPort; resolves once `count` are set up or
   * timeoutMs passed.
   */
  async open(count: number, hostPort: number, timeoutMs = 60_000): Promise<RawConn[]> {
    const opened: RawConn[] = [];
    for (let i = 0; i < count; i++) {
      const conn: RawConn = {
        guestPort: this.nextPort++,
        hostPort,
        seq: 1000,
        ack: 0,
        edge: 0,
        scale: 0,
        established: false,
      };
      this.conns.set(conn.guestPort, conn);
      opened.push(conn);
    }
    for (let i = 0; i < opened.length; i += 256) {
      await this.send(opened.slice(i, i + 256).map((c) => this.tcp(c, c.seq - 1, TcpFlags.SYN, undefined, true)));
    }
    const end = Date.now() + timeoutMs;
    while (opened.some((c) => !c.established) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    return opened.filter((c) => c.established);
  }

  /** A segment of conn with our sequence number `seq`. */
  tcp(c: RawConn, seq: number, flags: number, payload?: Buffer, syn = false): Buffer {
    return buildTcpFrame(
      GW_MAC,
      GUEST_MAC,
      GUEST,
      GW,
      {
        srcPort: c.guestPort,
        dstPort: c.hostPort,
        seq: seq >>> 0,
        ack: c.ack,
        flags: syn ? flags : flags | TcpFlags.ACK,
        window: 0xffff,
        ...(syn ? { mss: 1460, wscale: WSCALE } : {}),
      },
      payload,
    );
  }

  ping(size: number, seq: number): Buffer {
    const icmp = buildIcmp(8, 0, (0x4242 << 16) | (seq & 0xffff), Buffer.alloc(size, 0x61));
    // The MTU argument is the IP packet size: one (oversized, if size says so) frame, never fragments.
    return buildIpv4Frames(GW_MAC, GUEST_MAC, GUEST, GW, IPPROTO_ICMP, icmp, 65535)[0];
  }

  arpRequest(): Buffer {
    return buildArp(Buffer.alloc(6, 0xff), GUEST_MAC, {
      op: 1,
      senderMac: GUEST_MAC,
      senderIp: GUEST,
      targetMac: Buffer.alloc(6),
      targetIp: GW,
    });
  }

  /** A datagram to the host's 127.0.0.1:port (through the gateway address). */
  udp(port: number, payload: Buffer): Buffer {
    return buildIpv4Frames(
      GW_MAC,
      GUEST_MAC,
      GUEST,
      GW,
      IPPROTO_UDP,
      buildUdp(GUEST, GW, 5353, port, payload),
      1500,
    )[0];
  }

  /** A malformed DNS query to the gateway (answered at once with FORMERR, no resolver involved). */
  badDnsQuery(id: number): Buffer {
    const payload = Buffer.alloc(12);
    payload.writeUInt16BE(id & 0xffff, 0);
    payload.writeUInt16BE(1, 4); // one question that is not there
    return buildIpv4Frames(GW_MAC, GUEST_MAC, GUEST, GW, IPPROTO_UDP, buildUdp(GUEST, GW, 5353, 53, payload), 1500)[0];
  }

  /**
   * One round: each connection sends new in-order data as far as its last advertised window allows.
   * Returns the frames sent.
   */
  async fillWindows(conns: RawConn[], payload: Buffer): Promise<number> {
    let sent = 0;
    for (let k = 0; k < conns.length; k += 64) {
      const frames: Buffer[] = [];
      for (const c of conns.slice(k, k + 64)) {
        while (((c.edge - c.seq) | 0) >= payload.length) {
          frames.push(this.tcp(c, c.seq, TcpFlags.ACK, payload));
          c.seq = (c.seq + payload.length) >>> 0;
        }
      }
      sent += frames.length;
      if (frames.length) await this.send(frames);
    }
    return sent;
  }

  close(): void {
    this.socket.destroy();
  }

  private onFrame(f: Buffer): void {
    const eth = parseEthernet(f);
    if (!eth || eth.type !== ETHERTYPE_IPV4) return;
    const ip = parseIpv4(eth.payload);
    if (!ip || ip.protocol !== IPPROTO_TCP) return;
    const seg = parseTcp(ip);
    const c = seg && this.conns.get(seg.dstPort);
    if (!seg || !c) return;
    if (seg.flags & TcpFlags.RST) {
      this.conns.delete(c.guestPort);
      return;
    }
    if (seg.flags & TcpFlags.SYN && !c.established) {
      c.ack = (seg.seq + 1) >>> 0;
      c.established = true;
      c.scale = seg.wscale ?? 0;
      c.edge = (seg.ack + seg.window) >>> 0;
      void this.send([this.tcp(c, c.seq, TcpFlags.ACK)]);
      return;
    }
    // Track the window only; the data itself is never acknowledged.
    if (seg.flags & TcpFlags.ACK) {
      const edge = (seg.ack + (seg.window << c.scale)) >>> 0;
      if (((edge - c.edge) | 0) > 0) c.edge = edge;
    }
  }
}
