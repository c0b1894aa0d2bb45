// A preamble: the host's hello and its first requests, encoded before any connection exists, so
// that whoever holds the channel first (an early start in the CLI's loader) can send them the
// moment it is connected and a later AgentClient takes them over (`preamble` option) with their
// answers. Only frames and constants here: the loader loads this file, not the library.
import { DEFAULT_MAX_FRAME, DEFAULT_WINDOW, PROTOCOL_VERSION } from './constants';
import { encodeFrame } from './frame';

export interface PreambleRequest {
  op: string;
  args: Record<string, unknown>;
}

/**
 * The hello an AgentClient with default options sends, then `requests` under ids 1..n (an
 * AgentClient given their ops as `preamble` expects their answers under those ids).
 */
export function encodePreamble(requests: PreambleRequest[]): Buffer {
  return Buffer.concat([
    ...encodeFrame({ t: 'hello', version: PROTOCOL_VERSION, window: DEFAULT_WINDOW, maxFrame: DEFAULT_MAX_FRAME }),
    ...requests.flatMap((r, i) => encodeFrame({ t: 'req', id: i + 1, op: r.op, args: r.args })),
  ]);
}
