// The ttrpc layer against frames captured from a real session: containerd 1.6.20 (Debian's) and
// this shim, with SMOLVM_SHIM_TRACE set (`ctr run -d`, `ctr task exec`, `ctr task ps`, `ctr task
// pause`, `ctr task kill -s SIGKILL`, `ctr task rm`, then `ctr run --rm -t`). Every frame
// containerd sent is decoded and must re-encode to the very same bytes (so no field of it is
// lost or misread), and the answers containerd took are rebuilt from plain objects, byte for byte.
import fs from 'node:fs';
import path from 'node:path';
import { decodeMessage, encodeMessage } from '../src/proto';
import {
  Code,
  FrameDecoder,
  HEADER_LENGTH,
  MAX_MESSAGE,
  TYPE_REQUEST,
  TYPE_RESPONSE,
  decodeRequest,
  decodeResponse,
  encodeFrame,
  encodeRequest,
  encodeResponse,
  methodTypes,
  type Frame,
  type TtrpcRequest,
} from '../src/ttrpc';

interface Captured {
  direction: 'in' | 'out';
  frame: Buffer;
}

const captured: Captured[] = fs
  .readFileSync(path.join(__dirname, 'fixtures', 'containerd-1.6.20-frames.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((line) => {
    const { direction, frame } = JSON.parse(line) as { direction: 'in' | 'out'; frame: string };
    return { direction, frame: Buffer.from(frame, 'base64') };
  });

/** Each request with its decoded message, and the response on its stream. */
function exchanges(): Array<{
  request: TtrpcRequest;
  message: Record<string, unknown>;
  frame: Frame;
  response?: Frame;
}> {
  const list: Array<{ request: TtrpcRequest; message: Record<string, unknown>; frame: Frame; response?: Frame }> = [];
  // Responses answer the latest request on their stream id of the same connection; ids repeat across connections.
  const open = new Map<number, (typeof list)[number]>();
  for (const c of captured) {
    const [frame] = new FrameDecoder().push(c.frame);
    if (c.direction === 'in') {
      const request = decodeRequest(frame.payload);
      const entry = {
        request,
        message: decodeMessage(methodTypes(request.service, request.method).request, request.payload),
        frame,
      };
      list.push(entry);
      open.set(frame.streamId, entry);
    } else {
      const entry = open.get(frame.streamId);
      if (entry) entry.response = frame;
    }
  }
  return list;
}

describe('ttrpc frames containerd sent', () => {
  it('are one well-formed frame each: 10-byte header, big-endian length and odd stream id, request type, no flags', () => {
    for (const c of captured) {
      const frames = new FrameDecoder().push(c.frame);
      expect(frames).toHaveLength(1);
      expect(c.frame.readUInt32BE(0)).toBe(c.frame.length - HEADER_LENGTH);
      expect(frames[0].streamId % 2).toBe(1);
      expect(frames[0].type).toBe(c.direction === 'in' ? TYPE_REQUEST : TYPE_RESPONSE);
      expect(frames[0].flags).toBe(0);
    }
  });

  it('decode to the task API calls of the session, in order', () => {
    const calls = exchanges().map((e) => `${e.request.service}.${e.request.method}`);
    expect(new Set(calls.map((c) => c.split('.').slice(0, -1).join('.')))).toEqual(
      new Set(['containerd.task.v2.Task']),
    );
    const methods = calls.map((c) => c.split('.').pop());
    for (const m of [
      'Connect',
      'Create',
      'Start',
      'Wait',
      'Exec',
      'Pids',
      'Pause',
      'Kill',
      'Delete',
      'Shutdown',
      'ResizePty',
      'State',
    ])
      expect(methods).toContain(m);
    expect(methods.indexOf('Create')).toBeLessThan(methods.indexOf('Start'));
  });

  it('carry a timeout in nanoseconds (State: 2 s, Shutdown: 3 s) or none, and no metadata', () => {
    for (const { request } of exchanges()) {
      expect(request.metadata).toEqual([]);
      expect(request.timeoutNano).toBeLessThanOrEqual(3e9);
    }
    const shutdown = exchanges().find((e) => e.request.method === 'Shutdown')!;
    expect(shutdown.request.timeoutNano).toBeGreaterThan(2e9);
  });

  it('re-encode byte for byte: the schema reads every field containerd sends', () => {
    for (const { request, message, frame } of exchanges()) {
      const types = methodTypes(request.service, request.method);
      expect(encodeMessage(types.request, message).equals(request.payload)).toBe(true);
      const again = encodeRequest(frame.streamId, { ...request, payload: encodeMessage(types.request, message) });
      expect(again.equals(encodeFrame(frame))).toBe(true);
    }
  });

  it('hold what the shim needs: the bundle, the overlay rootfs, the FIFOs, an exec spec, signals', () => {
    const all = exchanges();
    const create = all.find((e) => e.request.method === 'Create' && !(e.message.terminal as boolean))!
      .message as Record<string, unknown>;
    expect(create.id).toBe('s4');
    expect(create.bundle).toMatch(/io\.containerd\.runtime\.v2\.task\/default\/s4$/);
    expect(create.rootfs).toEqual([
      expect.objectContaining({
        type: 'overlay',
        source: 'overlay',
        options: expect.arrayContaining([expect.stringMatching(/^lowerdir=/), expect.stringMatching(/^upperdir=/)]),
      }),
    ]);
    expect(create.stdout).toMatch(/s4-stdout$/);
    const tty = all.find((e) => e.request.method === 'Create' && e.message.terminal === true)!.message;
    expect(tty).toMatchObject({ id: 's5', terminal: true, stderr: '' });
    const exec = all.find((e) => e.request.method === 'Exec')!.message as {
      execId: string;
      spec: { type_url: string; value: Buffer };
    };
    expect(exec.execId).toBe('e1');
    expect(exec.spec.type_url).toBe('types.containerd.io/opencontainers/runtime-spec/1/Process');
    expect(JSON.parse(exec.spec.value.toString('utf8'))).toMatchObject({ args: ['sh', '-c', 'echo in-exec; exit 4'] });
    expect(all.find((e) => e.request.method === 'Kill')!.message).toMatchObject({ id: 's4', signal: 9, all: false });
    expect(all.find((e) => e.request.method === 'ResizePty')!.message).toMatchObject({
      id: 's5',
      width: expect.any(Number),
      height: expect.any(Number),
    });
  });
});

describe('ttrpc answers containerd took', () => {
  it('are rebuilt byte for byte from plain objects (status OK carries only the payload)', () => {
    let checked = 0;
    for (const { request, response } of exchanges()) {
      if (!response) continue;
      const decoded = decodeResponse(response.payload);
      if (decoded.status && decoded.status.code !== Code.OK) continue;
      const type = methodTypes(request.service, request.method).response;
      const reply = decodeMessage(type, decoded.payload);
      expect(
        encodeResponse(response.streamId, { payload: encodeMessage(type, reply) }).equals(encodeFrame(response)),
      ).toBe(true);
      checked++;
    }
    expect(checked).toBeGreaterThan(10);
  });

  it('Pause answered Unimplemented (12), which ctr reports as not implemented', () => {
    const pause = exchanges().find((e) => e.request.method === 'Pause')!;
    expect(decodeResponse(pause.response!.payload).status).toMatchObject({
      code: Code.Unimplemented,
      message: 'pause is not implemented by the smolvm shim',
    });
  });

  it('exit statuses: the exec 4 (Wait, Delete), the SIGKILLed init 137 (Delete), the tty task 7 (Wait)', () => {
    const answer = (method: string, id: string, execId: string) => {
      const e = exchanges().find(
        (x) => x.request.method === method && x.message.id === id && x.message.execId === execId,
      )!;
      return decodeMessage<{ exitStatus: number; exitedAt: { seconds: number } }>(
        methodTypes(e.request.service, method).response,
        decodeResponse(e.response!.payload).payload,
      );
    };
    expect(answer('Wait', 's4', 'e1').exitStatus).toBe(4);
    expect(answer('Delete', 's4', 'e1').exitStatus).toBe(4);
    expect(answer('Delete', 's4', '')).toMatchObject({ exitStatus: 137, exitedAt: { seconds: expect.any(Number) } });
    expect(answer('Delete', 's4', '').exitedAt.seconds).toBeGreaterThan(1_700_000_000);
    expect(answer('Wait', 's5', '').exitStatus).toBe(7);
  });
});

describe('frame decoder', () => {
  const frame = encodeRequest(7, {
    service: 'containerd.task.v2.Task',
    method: 'State',
    payload: encodeMessage('containerd.task.v2.StateRequest', { id: 'x' }),
  });

  it('reassembles frames split anywhere and several in one chunk', () => {
    const two = Buffer.concat([frame, frame]);
    for (let cut = 1; cut < two.length; cut++) {
      const d = new FrameDecoder();
      const got = [...d.push(two.subarray(0, cut)), ...d.push(two.subarray(cut))];
      expect(got.map((f) => f.streamId)).toEqual([7, 7]);
    }
  });

  it('refuses a header announcing more than 4 MiB before buffering its payload', () => {
    const header = Buffer.alloc(HEADER_LENGTH);
    header.writeUInt32BE(MAX_MESSAGE + 1, 0);
    header.writeUInt32BE(1, 4);
    header.writeUInt8(TYPE_REQUEST, 8);
    expect(() => new FrameDecoder().push(header)).toThrow(/exceeds/);
  });

  it('will not encode an oversized message', () => {
    expect(() =>
      encodeFrame({ streamId: 1, type: TYPE_REQUEST, flags: 0, payload: Buffer.alloc(MAX_MESSAGE + 1) }),
    ).toThrow(/exceeds/);
  });
});
