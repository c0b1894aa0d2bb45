import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFERRED_CA_CERTS_ENV, deferCaCerts, extraCaCerts, restoreCaCertsEnv } from '../src';

describe('deferred NODE_EXTRA_CA_CERTS', () => {
  it('restores the deferred value, and leaves an environment without one as it is', () => {
    const env: NodeJS.ProcessEnv = { [DEFERRED_CA_CERTS_ENV]: '/etc/x.pem', PATH: '/bin' };
    restoreCaCertsEnv(env);
    expect(env).toEqual({ NODE_EXTRA_CA_CERTS: '/etc/x.pem', PATH: '/bin' });
    const plain: NodeJS.ProcessEnv = { PATH: '/bin' };
    restoreCaCertsEnv(plain);
    expect(plain).toEqual({ PATH: '/bin' });
  });

  it('an empty deferred value means the user had none; a value node already has wins', () => {
    const none: NodeJS.ProcessEnv = { [DEFERRED_CA_CERTS_ENV]: '' };
    restoreCaCertsEnv(none);
    expect(none).toEqual({});
    const both: NodeJS.ProcessEnv = { [DEFERRED_CA_CERTS_ENV]: '/a.pem', NODE_EXTRA_CA_CERTS: '/b.pem' };
    restoreCaCertsEnv(both);
    expect(both).toEqual({ NODE_EXTRA_CA_CERTS: '/b.pem' });
  });

  it('defers for a child and round-trips', () => {
    const env = { NODE_EXTRA_CA_CERTS: '/etc/x.pem', HOME: '/root' };
    const child = deferCaCerts(env);
    expect(child).toEqual({ [DEFERRED_CA_CERTS_ENV]: '/etc/x.pem', HOME: '/root' });
    expect(env.NODE_EXTRA_CA_CERTS).toBe('/etc/x.pem');
    restoreCaCertsEnv(child);
    expect(child).toEqual(env);
    expect(deferCaCerts({ HOME: '/root' })).toEqual({ HOME: '/root' });
  });

  it('reads the certificates, and skips a file that is not there', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-ca-'));
    try {
      const file = path.join(dir, 'ca.pem');
      fs.writeFileSync(file, '-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n');
      expect(extraCaCerts({ NODE_EXTRA_CA_CERTS: file })).toContain('BEGIN CERTIFICATE');
      expect(extraCaCerts({ NODE_EXTRA_CA_CERTS: path.join(dir, 'missing.pem') })).toBeUndefined();
      expect(extraCaCerts({})).toBeUndefined();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
