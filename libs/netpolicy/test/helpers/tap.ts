// A TAP device for tests: /dev/net/tun opened non-blocking, TUNSETIFF through koffi, polled on a
// koffi worker (poll(2) with a short timeout) and drained with non-blocking reads, so frames in
// one burst reach the gateway as one chunk, like QEMU's stream.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { Duplex } from 'node:stream';
import { FrameDecoder, lengthPrefix } from '../../src/link';

const TUNSETIFF = 0x400454ca;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const POLLIN = 0x0001;

interface Libc {
  ioctl: (fd: number, request: number, ...args: unknown[]) => number;
  pollAsync: (fds: Buffer, nfds: number, timeout: number, cb: (err: unknown, res: number) => void) => void;
}
let libc: Libc | undefined;

function loadLibc(): Libc {
  if (!libc) {
    const koffi = createRequire(__filename)('koffi') as typeof import('koffi');
    const lib = koffi.load('libc.so.6');
    const ioctl = lib.func('int ioctl(int fd, unsigned long request, ...)');
    const poll = lib.func('int poll(_Inout_ uint8_t *fds, unsigned long nfds, int timeout)');
    libc = {
      ioctl: (fd, request, ...args) => ioctl(fd, request, ...args) as number,
      pollAsync: (fds, nfds, timeout, cb) => poll.async(fds, nfds, timeout, cb),
    };
  }
  return libc;
}

export class TapDevice {
  private closed = false;
  private current?: Duplex;
  framesRead = 0;
  framesWritten = 0;

  private constructor(
    readonly name: string,
    private readonly fd: number,
  ) {}

  static open(name: string): TapDevice {
    const fd = fs.openSync('/dev/net/tun', fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    const ifr = Buffer.alloc(40);
    ifr.write(name, 0, 15, 'ascii');
    ifr.writeUInt16LE(IFF_TAP | IFF_NO_PI, 16);
    try {
      loadLibc().ioctl(fd, TUNSETIFF, 'uint8_t *', ifr);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    return new TapDevice(name, fd);
  }

  /** A fresh duplex speaking the stream framing (length + frame) over this device. */
  link(): Duplex {
    this.current?.destroy();
    const fd = this.fd;
    const decoder = new FrameDecoder();
    const readBuf = Buffer.allocUnsafe(65536);
    const pollfd = Buffer.alloc(8);
    let polling = false;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const tap = this;
    const duplex: Duplex = new Duplex({
      read() {
        if (polling) return;
        polling = true;
        const loop = (): void => {
          if (duplex.destroyed || tap.closed || tap.current !== duplex) return;
          pollfd.writeInt32LE(fd, 0);
          pollfd.writeInt16LE(POLLIN, 4);
          pollfd.writeInt16LE(0, 6);
          loadLibc().pollAsync(pollfd, 1, 50, () => {
            if (duplex.destroyed || tap.closed || tap.current !== duplex) return;
            const parts: Buffer[] = [];
            for (let i = 0; i < 1024; i++) {
              let n: number;
              try {
                n = fs.readSync(fd, readBuf, 0, readBuf.length, null);
              } catch {
                break; // EAGAIN: drained
              }
              parts.push(lengthPrefix(n), Buffer.from(readBuf.subarray(0, n)));
              tap.framesRead++;
            }
            if (parts.length > 0 && !duplex.push(Buffer.concat(parts))) {
              polling = false;
              return;
            }
            loop();
          });
        };
        loop();
      },
      write(chunk: Buffer, _enc, cb) {
        for (const frame of decoder.push(chunk)) {
          try {
            fs.writeSync(fd, frame);
            tap.framesWritten++;
          } catch {
            // The kernel dropped it (queue full, device down): a lossy wire, like a real NIC.
          }
        }
        cb();
      },
    });
    this.current = duplex;
    return duplex;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.current?.destroy();
    fs.closeSync(this.fd);
  }
}
