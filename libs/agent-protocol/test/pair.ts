// In-memory duplex pairs for tests. Delivery is asynchronous and each end's write buffer is
// small, so the channel's backpressure path (write() returning false, 'drain') is exercised.
import { Duplex } from 'node:stream';

export interface Pair {
  host: Duplex;
  agent: Duplex;
  /** Bytes written so far by each end. */
  written: { host: number; agent: number };
}

export function duplexPair(highWaterMark = 64 * 1024): Pair {
  const written = { host: 0, agent: 0 };
  const ends: { host?: Duplex; agent?: Duplex } = {};
  const make = (side: 'host' | 'agent', peer: () => Duplex): Duplex =>
    new Duplex({
      highWaterMark,
      read() {},
      write(chunk: Buffer, _enc, cb) {
        written[side] += chunk.length;
        setImmediate(() => {
          if (!peer().destroyed) peer().push(chunk);
          cb();
        });
      },
      final(cb) {
        setImmediate(() => {
          if (!peer().destroyed) peer().push(null);
          cb();
        });
      },
      destroy(err, cb) {
        setImmediate(() => {
          const p = peer();
          if (!p.destroyed) p.push(null);
        });
        cb(err);
      },
    });
  ends.host = make('host', () => ends.agent as Duplex);
  ends.agent = make('agent', () => ends.host as Duplex);
  return { host: ends.host, agent: ends.agent, written };
}

export async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export function pattern(length: number, seed: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[i] = x & 0xff;
  }
  return buf;
}
