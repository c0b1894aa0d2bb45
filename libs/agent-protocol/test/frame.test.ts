import { FrameDecoder, MAX_HEADER, ProtocolError, encodeFrame } from '../src';
import { pattern } from './pair';

function body(header: Buffer, payload = Buffer.alloc(0), declaredHeaderLength = header.length): Buffer {
  const out = Buffer.alloc(8 + header.length + payload.length);
  out.writeUInt32BE(4 + header.length + payload.length, 0);
  out.writeUInt32BE(declaredHeaderLength, 4);
  header.copy(out, 8);
  payload.copy(out, 8 + header.length);
  return out;
}

describe('frames', () => {
  it('round-trips header and payload however the bytes are split', () => {
    const payload = pattern(3000, 7);
    const bytes = Buffer.concat([...encodeFrame({ t: 'data', s: 3 }, payload), ...encodeFrame({ t: 'eof', s: 3 })]);
    for (let cut = 0; cut <= bytes.length; cut += 97) {
      const d = new FrameDecoder(1 << 20);
      const frames = [...d.push(bytes.subarray(0, cut)), ...d.push(bytes.subarray(cut))];
      expect(frames.map((f) => f.header)).toEqual([
        { t: 'data', s: 3 },
        { t: 'eof', s: 3 },
      ]);
      expect(Buffer.compare(frames[0].payload, payload)).toBe(0);
      expect(frames[1].payload.length).toBe(0);
      expect(d.pendingBytes).toBe(0);
    }
  });

  it('decodes byte by byte', () => {
    const bytes = Buffer.concat(encodeFrame({ t: 'req', id: 1, op: 'ping', args: {} }, Buffer.from('xyz')));
    const d = new FrameDecoder(1 << 20);
    const frames = [];
    for (const b of bytes) frames.push(...d.push(Buffer.from([b])));
    expect(frames).toHaveLength(1);
    expect(frames[0].payload.toString()).toBe('xyz');
  });

  it('rejects an oversized frame from its length prefix alone, without buffering it', () => {
    const d = new FrameDecoder(1 << 20);
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(0xffffffff, 0);
    expect(() => d.push(prefix)).toThrow(/frame of 4294967295 bytes exceeds the 1048576-byte limit/);
    expect(d.pendingBytes).toBe(0);
    // A failed decoder stays failed: the stream position is lost.
    expect(() => d.push(Buffer.from(encodeFrame({ t: 'eof', s: 1 })[0]))).toThrow(ProtocolError);
  });

  it.each([
    ['a header length beyond the frame', body(Buffer.from('{"t":"eof","s":1}'), Buffer.alloc(0), 999), /overruns/],
    ['an empty header', body(Buffer.alloc(0), Buffer.from('abc')), /empty header/],
    ['a header that is not JSON', body(Buffer.from('{"t":')), /not valid JSON/],
    ['a header that is a JSON array', body(Buffer.from('[1,2]')), /not a JSON object/],
    [
      'a header larger than the header limit',
      body(Buffer.from(JSON.stringify({ t: 'x', pad: 'y'.repeat(MAX_HEADER) }))),
      /header of \d+ bytes exceeds/,
    ],
  ])('rejects %s', (_name, bytes, message) => {
    expect(() => new FrameDecoder(1 << 20).push(bytes)).toThrow(message);
  });

  it('rejects a frame too short to hold its header length', () => {
    const bytes = Buffer.from([0, 0, 0, 2, 0, 0]);
    expect(() => new FrameDecoder(1 << 20).push(bytes)).toThrow(/too short/);
  });
});
