// containerd's flags to a runtime v2 shim, and where the shim of a task listens. Light on
// purpose: the launcher loads only this before it starts the server.
import crypto from 'node:crypto';
import path from 'node:path';

export interface ShimFlags {
  namespace: string;
  address: string;
  publishBinary: string;
  id: string;
  bundle: string;
  socket: string;
  debug: boolean;
  version: boolean;
  action: string;
}

const VALUE_FLAGS: Record<string, keyof ShimFlags> = {
  namespace: 'namespace',
  address: 'address',
  'publish-binary': 'publishBinary',
  id: 'id',
  bundle: 'bundle',
  socket: 'socket',
};

/** Go `flag` syntax, as containerd passes it: -name value, -name=value, --name too. */
export function parseFlags(argv: string[]): ShimFlags {
  const flags: ShimFlags = {
    namespace: '',
    address: '',
    publishBinary: 'containerd',
    id: '',
    bundle: '',
    socket: '',
    debug: false,
    version: false,
    action: '',
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const m = /^--?([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m) {
      flags.action = arg;
      continue;
    }
    const [, name, inline] = m;
    if (name === 'debug' || name === 'v') {
      flags[name === 'v' ? 'version' : 'debug'] = inline === undefined || inline === 'true';
      continue;
    }
    const key = VALUE_FLAGS[name];
    if (!key) throw new Error(`unknown flag -${name}`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new Error(`flag -${name} needs a value`);
    (flags as unknown as Record<string, string>)[key] = value;
  }
  return flags;
}

/** Where the shim of (containerd, namespace, id) listens: beside containerd's socket, like runc's shims. */
export function socketPathFor(flags: ShimFlags): string {
  const digest = crypto
    .createHash('sha256')
    .update(`${flags.address}\0${flags.namespace}\0${flags.id}`)
    .digest('hex')
    .slice(0, 32);
  return path.join(path.dirname(flags.address || '/run/containerd/containerd.sock'), 's', `smolvm-${digest}`);
}
