// NODE_EXTRA_CA_CERTS, loaded only when smolvm makes a TLS connection. Node reads and parses that
// file at every start, before any of our code runs: with a whole system bundle in it (common on
// managed machines) that is ~90 ms of each `smolvm` command, almost none of which talk TLS. So the
// executable's hashbang starts node without it, under DEFERRED_CA_CERTS_ENV; the CLI puts it back
// into the environment at once (children and anyone reading it see the user's value), and the
// registry client adds the file to its trust store itself (extraCaCerts).
import fs from 'node:fs';

/** Where the hashbang (and our own node children, see deferCaCerts) carry NODE_EXTRA_CA_CERTS. */
export const DEFERRED_CA_CERTS_ENV = 'SMOLVM_NODE_EXTRA_CA_CERTS';

/**
 * Puts a deferred NODE_EXTRA_CA_CERTS back into `env` (the executable does this first). An empty
 * deferred value means the user had none.
 */
export function restoreCaCertsEnv(env: NodeJS.ProcessEnv = process.env): void {
  const deferred = env[DEFERRED_CA_CERTS_ENV];
  if (deferred === undefined) return;
  delete env[DEFERRED_CA_CERTS_ENV];
  if (deferred !== '' && env.NODE_EXTRA_CA_CERTS === undefined) env.NODE_EXTRA_CA_CERTS = deferred;
}

/** The environment for starting our own CLI again (the machine supervisor): the same deferral as the hashbang. */
export function deferCaCerts(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { NODE_EXTRA_CA_CERTS: extra, ...rest } = env;
  return extra === undefined ? env : { ...rest, [DEFERRED_CA_CERTS_ENV]: extra };
}

/**
 * The certificates of NODE_EXTRA_CA_CERTS (PEM text), for a TLS client to trust on top of Node's
 * bundled roots; undefined when it is not set. Like Node, an unreadable file is skipped rather
 * than failing the connection (Node would have warned; a TLS error then says what is wrong).
 */
export function extraCaCerts(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const file = env.NODE_EXTRA_CA_CERTS;
  if (!file) return undefined;
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}
