// The DNS message subset the gateway's resolver needs (RFC 1035): parse a query, write an answer
// with A records. Also used by tests to play an upstream DNS server on loopback.

export const DnsType = { A: 1, CNAME: 5, PTR: 12, AAAA: 28, ANY: 255 } as const;
export const DnsRcode = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

export interface DnsQuestion {
  name: string;
  type: number;
  class: number;
}

export interface DnsQuery {
  id: number;
  /** Recursion desired, echoed in the answer. */
  rd: boolean;
  opcode: number;
  question: DnsQuestion;
}

export interface DnsAnswerRecord {
  /** IPv4 dotted quad (A) — the only record type the gateway answers with. */
  address: string;
  ttl: number;
}

/** Reads a possibly compressed name; undefined on loops, overruns or bad labels. */
function readName(msg: Buffer, offset: number): { name: string; end: number } | undefined {
  const labels: string[] = [];
  let end = -1;
  let jumps = 0;
  let i = offset;
  while (true) {
    if (i >= msg.length) return undefined;
    const len = msg[i];
    if (len === 0) {
      if (end < 0) end = i + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (i + 1 >= msg.length || ++jumps > 16) return undefined;
      if (end < 0) end = i + 2;
      i = ((len & 0x3f) << 8) | msg[i + 1];
      continue;
    }
    if (len > 63 || i + 1 + len > msg.length) return undefined;
    labels.push(msg.toString('latin1', i + 1, i + 1 + len));
    i += 1 + len;
  }
  const name = labels.join('.').toLowerCase();
  return name.length > 253 ? undefined : { name, end };
}

/** A standard query with exactly one question, or undefined (the caller answers FORMERR). */
export function parseDnsQuery(msg: Buffer): DnsQuery | undefined {
  if (msg.length < 12) return undefined;
  const flags = msg.readUInt16BE(2);
  if (flags & 0x8000) return undefined; // a response, not a query
  if (msg.readUInt16BE(4) !== 1) return undefined;
  const q = readName(msg, 12);
  if (!q || q.end + 4 > msg.length) return undefined;
  return {
    id: msg.readUInt16BE(0),
    rd: (flags & 0x0100) !== 0,
    opcode: (flags >> 11) & 0xf,
    question: { name: q.name, type: msg.readUInt16BE(q.end), class: msg.readUInt16BE(q.end + 2) },
  };
}

function encodeName(name: string): Buffer {
  const parts = name === '' ? [] : name.split('.');
  const bufs = parts.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')]));
  return Buffer.concat([...bufs, Buffer.from([0])]);
}

/** Builds a query (tests and the upstream client). */
export function buildDnsQuery(id: number, name: string, type: number = DnsType.A): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2);
  header.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(type, 0);
  tail.writeUInt16BE(1, 2);
  return Buffer.concat([header, encodeName(name), tail]);
}

/**
 * An authoritative-looking recursive answer: the question echoed, then A records (name
 * compressed to the question at offset 12). Answers for a malformed query echo only the id.
 */
export function buildDnsResponse(
  query: DnsQuery | { id: number; rd?: boolean; question?: DnsQuestion },
  rcode: number,
  answers: DnsAnswerRecord[] = [],
): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(query.id, 0);
  header.writeUInt16BE(0x8000 | (query.rd ? 0x0100 : 0) | 0x0080 | (rcode & 0xf), 2);
  const q = query.question;
  header.writeUInt16BE(q ? 1 : 0, 4);
  header.writeUInt16BE(q ? answers.length : 0, 6);
  if (!q) return header;
  const question = Buffer.concat([
    encodeName(q.name),
    Buffer.from([q.type >> 8, q.type & 0xff, q.class >> 8, q.class & 0xff]),
  ]);
  const records = answers.map((a) => {
    const r = Buffer.alloc(16);
    r.writeUInt16BE(0xc00c, 0);
    r.writeUInt16BE(DnsType.A, 2);
    r.writeUInt16BE(1, 4);
    r.writeUInt32BE(Math.max(0, Math.min(0x7fffffff, Math.floor(a.ttl))), 6);
    r.writeUInt16BE(4, 10);
    a.address.split('.').forEach((o, i) => (r[12 + i] = Number(o)));
    return r;
  });
  return Buffer.concat([header, question, ...records]);
}

/** Parses the A records of a response (tests; the fake upstream). */
export function parseDnsAnswers(msg: Buffer): { id: number; rcode: number; answers: DnsAnswerRecord[] } | undefined {
  if (msg.length < 12) return undefined;
  const qd = msg.readUInt16BE(4);
  const an = msg.readUInt16BE(6);
  let i = 12;
  for (let n = 0; n < qd; n++) {
    const q = readName(msg, i);
    if (!q) return undefined;
    i = q.end + 4;
  }
  const answers: DnsAnswerRecord[] = [];
  for (let n = 0; n < an; n++) {
    const r = readName(msg, i);
    if (!r || r.end + 10 > msg.length) return undefined;
    const type = msg.readUInt16BE(r.end);
    const ttl = msg.readUInt32BE(r.end + 4);
    const rdlen = msg.readUInt16BE(r.end + 8);
    const data = r.end + 10;
    if (data + rdlen > msg.length) return undefined;
    if (type === DnsType.A && rdlen === 4) answers.push({ address: [...msg.subarray(data, data + 4)].join('.'), ttl });
    i = data + rdlen;
  }
  return { id: msg.readUInt16BE(0), rcode: msg.readUInt16BE(2) & 0xf, answers };
}
