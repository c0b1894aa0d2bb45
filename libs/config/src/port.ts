import { invalid } from './invalid';

export interface PortMapping {
  hostPort: number;
  guestPort: number;
}

const REMEDY = 'write HOST:GUEST or PORT with ports 1-65535, e.g. 8080:80 or 8080';

/** `side` is "host ", "guest " or "" (a single PORT names both sides). */
function portNumber(spec: string, text: string, side: string): number {
  if (text === '') throw invalid('port mapping', spec, `${side}port is empty`, REMEDY);
  if (text.includes('-'))
    throw invalid('port mapping', spec, 'port ranges are not supported', 'map each port separately, e.g. 8080:80');
  if (!/^\d+$/.test(text)) throw invalid('port mapping', spec, `${side}port "${text}" is not a number`, REMEDY);
  const port = Number(text);
  if (port < 1 || port > 65535)
    throw invalid('port mapping', spec, `${side}port ${port} is out of range 1-65535`, REMEDY);
  return port;
}

/**
 * Parses `HOST:GUEST`, or `PORT` meaning the same port on both sides (the common case, and
 * what Docker's `-p 8080` users expect to get once a random host port is not an option).
 * Forwarding is TCP only, so a `/tcp` suffix is tolerated and anything else is refused.
 */
export function parsePort(spec: string): PortMapping {
  let body = spec;
  const slash = spec.indexOf('/');
  if (slash !== -1) {
    const proto = spec.slice(slash + 1);
    if (proto.toLowerCase() !== 'tcp') {
      throw invalid(
        'port mapping',
        spec,
        `protocol "${proto}" is not supported; port forwarding is TCP only`,
        'drop the protocol suffix, e.g. 8080:80',
      );
    }
    body = spec.slice(0, slash);
  }
  const parts = body.split(':');
  if (parts.length > 2) {
    throw invalid(
      'port mapping',
      spec,
      'binding to a specific host address is not supported',
      'write HOST:GUEST, e.g. 8080:80',
    );
  }
  const hostPort = portNumber(spec, parts[0], parts.length === 1 ? '' : 'host ');
  const guestPort = parts.length === 1 ? hostPort : portNumber(spec, parts[1], 'guest ');
  return { hostPort, guestPort };
}
