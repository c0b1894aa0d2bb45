// Node programs run inside the guest namespace (node -e). Each prints one JSON line.

/** Sends MB mebibytes of random data, half-closes, prints its digest and the server's reply. */
export const UPLOAD = `
const net = require('net'), crypto = require('crypto');
const [host, port, mb] = process.argv.slice(1);
const total = Number(mb) * 1048576;
const h = crypto.createHash('sha256');
let sent = 0, reply = '';
const s = net.connect({ host, port: Number(port), allowHalfOpen: true });
function pump() {
  while (sent < total) {
    const b = crypto.randomBytes(65536);
    h.update(b); sent += b.length;
    if (!s.write(b)) return s.once('drain', pump);
  }
  s.end();
}
s.on('connect', pump);
s.on('data', (d) => (reply += d));
s.on('end', () => console.log(JSON.stringify({ sent: h.digest('hex'), reply: reply.trim() })));
s.on('error', (e) => console.log(JSON.stringify({ error: e.code })));
`;

/** Asks for MB mebibytes, optionally stops reading for PAUSE ms first, prints count + digest. */
export const DOWNLOAD = `
const net = require('net'), crypto = require('crypto');
const [host, port, mb, pause] = process.argv.slice(1);
const h = crypto.createHash('sha256');
let n = 0;
const s = net.connect({ host, port: Number(port) });
s.on('connect', () => {
  s.write(mb + '\\n');
  if (Number(pause) > 0) {
    s.pause();
    console.error('paused');
    setTimeout(() => s.resume(), Number(pause));
  }
});
s.on('data', (d) => { h.update(d); n += d.length; });
s.on('end', () => console.log(JSON.stringify({ n, digest: h.digest('hex') })));
s.on('error', (e) => console.log(JSON.stringify({ error: e.code })));
`;

/** N concurrent connections to an echo server, each checking its own echo. */
export const CONCURRENT = `
const net = require('net'), crypto = require('crypto');
const [host, port, count] = process.argv.slice(1);
const N = Number(count);
let ok = 0, bad = 0, errors = {};
const done = () => { if (ok + bad === N) console.log(JSON.stringify({ ok, bad, errors })); };
for (let i = 0; i < N; i++) {
  const payload = crypto.randomBytes(8192 + i);
  const got = [];
  const s = net.connect({ host, port: Number(port), allowHalfOpen: true });
  s.on('connect', () => s.end(payload));
  s.on('data', (d) => got.push(d));
  s.on('end', () => { Buffer.concat(got).equals(payload) ? ok++ : bad++; done(); });
  s.on('error', (e) => { bad++; errors[e.code] = (errors[e.code] || 0) + 1; done(); });
}
`;

/** Reads until the server half-closes, then answers and closes its side. */
export const HALF_CLOSE = `
const net = require('net');
const [host, port] = process.argv.slice(1);
let got = '';
const s = net.connect({ host, port: Number(port), allowHalfOpen: true });
s.on('data', (d) => (got += d));
s.on('end', () => { s.end('world'); });
s.on('close', () => console.log(JSON.stringify({ got })));
s.on('error', (e) => console.log(JSON.stringify({ error: e.code })));
`;

/** Writes a byte, then either waits for an error (mode=wait) or resets (mode=reset). */
export const RESET = `
const net = require('net');
const [host, port, mode] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port) });
s.on('connect', () => {
  s.write('x');
  if (mode === 'reset') setTimeout(() => { s.resetAndDestroy(); console.log(JSON.stringify({ reset: true })); }, 200);
});
s.on('error', (e) => console.log(JSON.stringify({ error: e.code })));
s.on('end', () => console.log(JSON.stringify({ end: true })));
setTimeout(() => { console.log(JSON.stringify({ timeout: true })); process.exit(0); }, 5000).unref();
`;

/** One UDP round trip over a connected socket. */
export const UDP = `
const d = require('dgram').createSocket('udp4');
const [host, port] = process.argv.slice(1);
const out = (o) => { console.log(JSON.stringify(o)); process.exit(0); };
d.on('message', (m) => out({ reply: m.toString() }));
d.on('error', (e) => out({ error: e.code }));
d.connect(Number(port), host, () => {
  d.send('ping-udp');
  setTimeout(() => d.send('ping-udp'), 300);
});
setTimeout(() => out({ timeout: true }), 2000);
`;

/** An HTTP server on 0.0.0.0:PORT answering "from guest"; prints ready, lives MS milliseconds. */
export const GUEST_SERVER = `
const http = require('http');
const [port, ms] = process.argv.slice(1);
const srv = http.createServer((req, res) => res.end('from guest ' + req.url));
srv.listen(Number(port), '0.0.0.0', () => console.log('ready'));
setTimeout(() => process.exit(0), Number(ms));
`;
