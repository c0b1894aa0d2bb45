// Host end of one --ssh-agent connection. The guest is root in its VM and can run any client, so
// it only gets what `ssh` needs from an agent: the list of keys and signatures. Every other request
// (add, remove, lock, smartcard, extensions, SSH1) is answered with a failure here and never
// reaches the host's agent. Messages are forwarded as they came, not re-encoded, so certificates
// and security-key identities the host agent holds work unchanged.
import type { Duplex, Readable, Writable } from 'node:stream';

/** Longest message either side may send (as OpenSSH's own agent caps it); longer ones close the connection. */
export const AGENT_MAX_MESSAGE = 256 * 1024;

const SSH_AGENT_FAILURE = 5;
const SSH2_AGENTC_REQUEST_IDENTITIES = 11;
const SSH2_AGENTC_SIGN_REQUEST = 13;
const FORWARDED = new Set([SSH2_AGENTC_REQUEST_IDENTITIES, SSH2_AGENTC_SIGN_REQUEST]);
const FAILURE = Buffer.from([0, 0, 0, 1, SSH_AGENT_FAILURE]);

// Names of the requests a guest may try, for the log line of a refusal.
const REQUEST_NAMES: Record<number, string> = {
  1: 'SSH1 list identities',
  3: 'SSH1 RSA challenge',
  7: 'SSH1 add identity',
  8: 'SSH1 remove identity',
  9: 'SSH1 remove all identities',
  17: 'add identity',
  18: 'remove identity',
  19: 'remove all identities',
  20: 'add smartcard key',
  21: 'remove smartcard key',
  22: 'lock',
  23: 'unlock',
  24: 'SSH1 add constrained identity',
  25: 'add constrained identity',
  26: 'add constrained smartcard key',
  27: 'extension',
};

/** "lock (22)", "message type 99": what a refused request asked for. */
export function agentRequestName(type: number): string {
  const name = REQUEST_NAMES[type];
  return name ? `${name} (${type})` : `message type ${type}`;
}

/** Splits a byte stream into agent messages: uint32 length, then that many bytes (type first). */
class MessageReader {
  private buffered: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
  }

  /** The next whole message with its length prefix; null until it has all arrived. */
  next(): Buffer | null {
    if (this.buffered.length < 4) return null;
    const length = this.buffered.readUInt32BE(0);
    // Checked on the prefix alone: a peer announcing a huge message gets nothing buffered for it.
    if (length === 0 || length > AGENT_MAX_MESSAGE)
      throw new RangeError(`message of ${length} bytes (at most ${AGENT_MAX_MESSAGE})`);
    if (this.buffered.length < 4 + length) return null;
    const message = this.buffered.subarray(0, 4 + length);
    this.buffered = this.buffered.subarray(4 + length);
    return message;
  }
}

export interface AgentFilterEvents {
  /** A request answered with a failure here (its message type). */
  onRefused?: (type: number) => void;
  /** The connection is over (each side ended or destroyed); called once. */
  onClose?: () => void;
}

/**
 * Relays one guest connection (`input`/`output`) to a connection to the host's agent, one
 * request at a time: the next request is read only once the previous one is answered and the
 * guest has taken its answers, so refusals keep their place in the order and a guest that writes
 * without reading is held back by flow control instead of making the host buffer.
 */
export function filterAgentConnection(
  guest: { input: Readable; output: Writable },
  host: Duplex,
  events: AgentFilterEvents = {},
): void {
  const fromGuest = new MessageReader();
  const fromHost = new MessageReader();
  let awaitingHost = false;
  let outputFull = false;
  let guestEnded = false;
  let closed = false;

  const close = (): void => {
    if (closed) return;
    closed = true;
    // Output first: when both are one socket, its answers still go out before it is destroyed.
    if (!guest.output.writableEnded) guest.output.end();
    if (!guestEnded) guest.input.destroy();
    host.destroy();
    events.onClose?.();
  };

  const toGuest = (message: Buffer): void => {
    if (guest.output.write(message)) return;
    outputFull = true;
    guest.output.once('drain', () => {
      outputFull = false;
      serveGuest();
    });
  };

  // Answers what has arrived whole, up to the first request that must wait.
  const serveGuest = (): void => {
    while (!closed && !awaitingHost && !outputFull) {
      let message: Buffer | null;
      try {
        message = fromGuest.next();
      } catch {
        return close();
      }
      if (!message) {
        // The guest is done sending and everything is answered (a partial message is dropped).
        if (guestEnded) close();
        break;
      }
      const type = message[4];
      if (FORWARDED.has(type)) {
        awaitingHost = true;
        host.write(message);
      } else {
        events.onRefused?.(type);
        toGuest(FAILURE);
      }
    }
    if (closed) return;
    if (awaitingHost || outputFull) guest.input.pause();
    else if (!guestEnded) guest.input.resume();
  };

  guest.input.on('data', (chunk: Buffer) => {
    fromGuest.push(chunk);
    serveGuest();
  });
  guest.input.once('end', () => {
    guestEnded = true;
    serveGuest();
  });
  host.on('data', (chunk: Buffer) => {
    fromHost.push(chunk);
    for (;;) {
      let answer: Buffer | null;
      try {
        answer = fromHost.next();
      } catch {
        return close();
      }
      if (!answer) return;
      // The agent speaks only when asked: anything else means the stream is out of step.
      if (!awaitingHost) return close();
      awaitingHost = false;
      toGuest(answer);
      serveGuest();
    }
  });
  // An input that ended normally closes too (autoDestroy) while answers may still be owed.
  guest.input.once('close', () => {
    if (!guestEnded) close();
  });
  for (const side of [guest.input, guest.output, host]) side.on('error', close);
  guest.output.once('close', close);
  host.once('close', close);
  host.once('end', close);
}
