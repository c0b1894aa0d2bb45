// The frame headers ("envelopes") both ends exchange. Op-specific arguments live in ops.ts.
import { Fields, SchemaError, type Json } from './schema';

export interface AgentInfo {
  /** Free-form facts the agent reports about itself (node version, pid, boot timings). */
  [key: string]: string | number | boolean | null;
}

export interface HelloMessage {
  t: 'hello';
  version: number;
  /** Receive window per stream this side grants initially. */
  window: number;
  /** Largest frame body this side accepts. */
  maxFrame: number;
  /** Agent only: true when it accepts requests now; false means a `ready` event follows. */
  ready: boolean;
  agent?: AgentInfo;
}

export interface RequestMessage {
  t: 'req';
  id: number;
  op: string;
  args: Json;
}

export interface ResponseMessage {
  t: 'res';
  id: number;
  ok: boolean;
  result?: Json;
  error?: { code: string; message: string };
}

export interface EventMessage {
  t: 'event';
  op: string;
  args: Json;
}

/** Stream frames: `data` carries the payload; `eof` ends the stream; `credit` lets the sender
 *  send n more bytes; `close` says the receiver will read no more (the sender drops the rest). */
export interface StreamMessage {
  t: 'data' | 'eof' | 'credit' | 'close';
  s: number;
  n?: number;
}

export type Message = HelloMessage | RequestMessage | ResponseMessage | EventMessage | StreamMessage;

const MAX_ID = 2 ** 53 - 1;

/** Validates an envelope. Throws SchemaError; the caller decides whether that is fatal. */
export function parseMessage(header: Json): Message {
  const f = new Fields(header, 'frame');
  const t = f.str('t', 16);
  switch (t) {
    case 'hello': {
      const version = f.int('version', 0, 0xffff);
      const agent = f.optObj('agent');
      const info: AgentInfo = {};
      if (agent) {
        for (const [k, v] of Object.entries(agent.raw).slice(0, 64)) {
          if (
            v === null ||
            typeof v === 'boolean' ||
            typeof v === 'number' ||
            (typeof v === 'string' && v.length <= 1024)
          )
            info[k] = v;
        }
      }
      return {
        t,
        version,
        window: f.int('window', 0, 2 ** 31),
        maxFrame: f.int('maxFrame', 0, 2 ** 31),
        ready: f.optBool('ready') ?? false,
        ...(agent ? { agent: info } : {}),
      };
    }
    case 'req':
      return { t, id: f.int('id', 1, MAX_ID), op: f.str('op', 64), args: f.has('args') ? f.obj('args').raw : {} };
    case 'res': {
      const id = f.int('id', 1, MAX_ID);
      if (f.bool('ok')) return { t, id, ok: true, result: f.has('result') ? f.obj('result').raw : {} };
      const e = f.obj('error');
      return { t, id, ok: false, error: { code: e.str('code', 64), message: e.str('message', 4096) } };
    }
    case 'event':
      return { t, op: f.str('op', 64), args: f.has('args') ? f.obj('args').raw : {} };
    case 'data':
    case 'eof':
    case 'close':
      return { t, s: f.int('s', 1, MAX_ID) };
    case 'credit':
      return { t, s: f.int('s', 1, MAX_ID), n: f.int('n', 1, 2 ** 31) };
    default:
      throw new SchemaError(`unknown frame type '${t}'`);
  }
}
