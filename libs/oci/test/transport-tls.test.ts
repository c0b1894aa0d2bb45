// The smolvm executable starts node without NODE_EXTRA_CA_CERTS (it is parsed only when needed):
// registry connections must still trust the certificates it names, read when they connect.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Transport } from '../src/transport';

let dir: string;
let server: https.Server;
let url: string;
const saved = process.env.NODE_EXTRA_CA_CERTS;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-tls-'));
  // A registry with a self-signed certificate: trusted only through NODE_EXTRA_CA_CERTS.
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=smolvm test registry',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      path.join(dir, 'key.pem'),
      '-out',
      path.join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
  server = https.createServer(
    { key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')) },
    (_req, res) => res.end('ok'),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/v2/`;
});

afterAll(() => {
  server.close();
  fs.rmSync(dir, { recursive: true, force: true });
  if (saved === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
  else process.env.NODE_EXTRA_CA_CERTS = saved;
});

async function get(): Promise<string> {
  const t = new Transport({ retry: { retries: 0 } });
  try {
    const res = await t.once({ method: 'GET', url });
    return await res.body.text();
  } finally {
    await t.close();
  }
}

it('trusts the certificates NODE_EXTRA_CA_CERTS names when the process started without them', async () => {
  process.env.NODE_EXTRA_CA_CERTS = path.join(dir, 'cert.pem');
  expect(await get()).toBe('ok');
});

it('does not trust a certificate nobody named (the check is not switched off)', async () => {
  delete process.env.NODE_EXTRA_CA_CERTS;
  await expect(get()).rejects.toThrow(/certificate/i);
});
