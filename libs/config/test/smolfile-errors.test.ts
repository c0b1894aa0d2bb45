import { ConfigError } from '@smolvm/common';
import { parseSmolfile } from '../src';
import { thrown } from './helpers';

/** [what is wrong, Smolfile text, exact message (file:line: 'key path': why), exact remedy]. */
const BAD: Array<[string, string, string, string]> = [
  // Types
  [
    'cpus as string',
    'image = "alpine"\ncpus = "2"',
    `Smolfile:2: 'cpus': expected an integer, got a string`,
    'write it like: cpus = 2',
  ],
  ['cpus as float', 'cpus = 2.0', `Smolfile:1: 'cpus': expected an integer, got a float`, 'write it like: cpus = 2'],
  [
    'net as string',
    'net = "yes"',
    `Smolfile:1: 'net': expected true or false, got a string`,
    'write it like: net = true',
  ],
  [
    'env as string',
    'env = "PORT=1"',
    `Smolfile:1: 'env': expected an array, got a string`,
    'write it like: env = ["PORT=8080", "DEBUG=1"]',
  ],
  [
    'entrypoint element not a string',
    'entrypoint = ["/bin/x", 1]',
    `Smolfile:1: 'entrypoint[1]': each element must be a string, got an integer`,
    'write it like: entrypoint = ["/app/run"]',
  ],
  [
    'cmd as string',
    'cmd = "serve --port 80"',
    `Smolfile:1: 'cmd': expected an array of strings (exec form), got a string`,
    'write it like: cmd = ["sh", "-c", "serve --port 80"]',
  ],
  [
    'memory as boolean',
    'memory = true',
    `Smolfile:1: 'memory': expected an integer or a size string, got a boolean`,
    'write it like: memory = 1024 (MiB) or memory = "2G"',
  ],
  [
    'table as scalar',
    'dev = 1',
    `Smolfile:1: 'dev': expected a table, got an integer`,
    'write it like: [dev] followed by volumes, ports, init, env, workdir',
  ],
  [
    'array of tables',
    'cpus = 1\n[[dev]]\nports = []',
    `Smolfile:2: 'dev': expected a table, got an array`,
    'write it like: [dev] followed by volumes, ports, init, env, workdir',
  ],
  [
    'health interval as integer',
    '[health]\nexec = ["true"]\ninterval = 10',
    `Smolfile:3: 'health.interval': expected a string, got an integer`,
    'write it like: interval = "10s"',
  ],
  [
    'ssh_agent as string',
    '[auth]\nssh_agent = "yes"',
    `Smolfile:2: 'auth.ssh_agent': expected true or false, got a string`,
    'write it like: ssh_agent = true',
  ],
  [
    'date value',
    'image = 1979-05-27',
    `Smolfile:1: 'image': expected a string, got a date`,
    'write it like: image = "python:3.12-alpine"',
  ],
  // Ranges and values
  [
    'zero cpus',
    'cpus = 0',
    `Smolfile:1: 'cpus': invalid CPU count "0": must be between 1 and 64`,
    'write a whole number from 1 to 64, e.g. 2',
  ],
  [
    'too many cpus',
    '\n\ncpus = 65',
    `Smolfile:3: 'cpus': invalid CPU count "65": must be between 1 and 64`,
    'write a whole number from 1 to 64, e.g. 2',
  ],
  [
    'too little memory',
    'memory = 32',
    `Smolfile:1: 'memory': invalid memory size "32": 32 MiB is below the minimum of 64 MiB`,
    'write a whole number of MiB or a size with a unit, e.g. 512, 512M, 2G or 2GiB',
  ],
  [
    'absurd memory',
    'memory = 8589934592',
    `Smolfile:1: 'memory': invalid memory size "8589934592": 8589934592 MiB is above the maximum of 1048576 MiB`,
    'write a whole number of MiB or a size with a unit, e.g. 512, 512M, 2G or 2GiB',
  ],
  [
    'memory with bad unit',
    'memory = "2X"',
    `Smolfile:1: 'memory': invalid memory size "2X": unknown unit "X"`,
    'write a whole number of MiB or a size with a unit, e.g. 512, 512M, 2G or 2GiB',
  ],
  [
    'negative storage',
    'storage = -5',
    `Smolfile:1: 'storage': invalid disk size "-5": must be greater than zero`,
    'write a whole number of GiB or a size with a unit, e.g. 20, 20G, 20GiB or 1T',
  ],
  [
    'zero overlay',
    'overlay = 0',
    `Smolfile:1: 'overlay': invalid disk size "0": must be greater than zero`,
    'write a whole number of GiB or a size with a unit, e.g. 20, 20G, 20GiB or 1T',
  ],
  [
    'env without =',
    'env = [\n  "A=1",\n  "PORT",\n]',
    `Smolfile:3: 'env[1]': invalid environment variable "PORT": missing "="`,
    'write NAME=VALUE where NAME is letters, digits and _ and does not start with a digit, e.g. PORT=8080',
  ],
  [
    'env bad name',
    '[dev]\nenv = ["1X=2"]',
    `Smolfile:2: 'dev.env[0]': invalid environment variable "1X=2": name "1X" is not a valid variable name`,
    'write NAME=VALUE where NAME is letters, digits and _ and does not start with a digit, e.g. PORT=8080',
  ],
  [
    'empty cmd',
    'cmd = []',
    `Smolfile:1: 'cmd': must not be an empty array`,
    'list the program and its arguments, or remove the key',
  ],
  [
    'empty program',
    'entrypoint = ["", "x"]',
    `Smolfile:1: 'entrypoint[0]': program name is empty`,
    'the first element is the program to run, e.g. "/app/run"',
  ],
  [
    'relative workdir',
    'workdir = "app"',
    `Smolfile:1: 'workdir': invalid workdir "app": must be absolute (start with /)`,
    'write an absolute path inside the VM, e.g. /app',
  ],
  [
    'dev workdir with ..',
    '[dev]\nworkdir = "/a/../b"',
    `Smolfile:2: 'dev.workdir': invalid workdir "/a/../b": must not contain ".." components`,
    'write an absolute path inside the VM, e.g. /app',
  ],
  [
    'bad image',
    'image = "Python:3.12"',
    `Smolfile:1: 'image': invalid image reference "Python:3.12": repository component "Python" must be lowercase`,
    'write python',
  ],
  [
    'short digest',
    'image = "alpine@sha256:abc"',
    `Smolfile:1: 'image': invalid image reference "alpine@sha256:abc": digest has 3 hex characters, expected exactly 64`,
    'digest references require sha256: followed by exactly 64 lowercase hex characters',
  ],
  [
    'bad port in multi-line array',
    '[dev]\nports = [\n  "8080:8080",\n  "80:0",\n]',
    `Smolfile:4: 'dev.ports[1]': invalid port mapping "80:0": guest port 0 is out of range 1-65535`,
    'write HOST:GUEST or PORT with ports 1-65535, e.g. 8080:80 or 8080',
  ],
  [
    'bad port in inline table',
    'dev = { ports = ["1", "x"] }',
    `Smolfile:1: 'dev.ports[1]': invalid port mapping "x": port "x" is not a number`,
    'write HOST:GUEST or PORT with ports 1-65535, e.g. 8080:80 or 8080',
  ],
  [
    'relative guest volume',
    '[dev]\nvolumes = ["src:app"]',
    `Smolfile:2: 'dev.volumes[0]': invalid volume "src:app": guest path must be absolute (start with /)`,
    'write HOST:GUEST[:ro], e.g. ./src:/app or ./data:/data:ro',
  ],
  [
    'volume option',
    '[dev]\nvolumes = ["./a:/b:rx"]',
    `Smolfile:2: 'dev.volumes[0]': invalid volume "./a:/b:rx": unknown option "rx" (only "ro" or "rw")`,
    'write HOST:GUEST[:ro], e.g. ./src:/app or ./data:/data:ro',
  ],
  [
    'empty init',
    '[dev]\ninit = ["echo hi", " "]',
    `Smolfile:2: 'dev.init[1]': init command is empty`,
    'remove the empty entry',
  ],
  [
    'url host',
    '[network]\nallow_hosts = ["https://api.stripe.com"]',
    `Smolfile:2: 'network.allow_hosts[0]': invalid hostname "https://api.stripe.com": contains a URL scheme`,
    'write only the hostname, e.g. api.stripe.com',
  ],
  [
    'ip as host',
    '[network]\nallow_hosts = ["1.2.3.4"]',
    `Smolfile:2: 'network.allow_hosts[0]': invalid hostname "1.2.3.4": is an IP address, not a hostname`,
    'put IP addresses in the CIDR allow list (--allow-cidr or [network] allow_cidrs)',
  ],
  [
    'cidr host bits',
    '[network]\nallow_cidrs = ["10.0.0.0/8", "10.1.2.3/8"]',
    `Smolfile:2: 'network.allow_cidrs[1]': invalid CIDR "10.1.2.3/8": host bits are set; the network containing it is 10.0.0.0/8`,
    'write 10.0.0.0/8, or 10.1.2.3/32 for the single address',
  ],
  [
    'cidr prefix',
    '[network]\nallow_cidrs = ["fd00::/129"]',
    `Smolfile:2: 'network.allow_cidrs[0]': invalid CIDR "fd00::/129": prefix /129 is larger than /128 for IPv6`,
    'write an IPv4 or IPv6 network as ADDRESS/PREFIX, e.g. 10.0.0.0/8 or fd00::/8, or a single address',
  ],
  [
    'net false with allow list',
    'net = false\n[network]\nallow_hosts = ["a.com"]',
    `Smolfile:1: 'net': net = false contradicts [network] allow lists, which imply outbound networking`,
    'remove net = false, or remove the allow lists',
  ],
  [
    'platform alias',
    '[artifact]\noci_platform = "linux/x86_64"',
    `Smolfile:2: 'artifact.oci_platform': invalid platform "linux/x86_64": architecture "x86_64" is not supported (supported: amd64, arm64)`,
    'did you mean linux/amd64?',
  ],
  [
    'artifact cpus',
    '[artifact]\ncpus = 100',
    `Smolfile:2: 'artifact.cpus': invalid CPU count "100": must be between 1 and 64`,
    'write a whole number from 1 to 64, e.g. 2',
  ],
  [
    'health without exec',
    'cpus = 1\n\n[health]\ninterval = "10s"',
    `Smolfile:3: 'health': missing required key 'exec'`,
    'add the check command, e.g. exec = ["curl", "-f", "http://127.0.0.1:8080/health"]',
  ],
  [
    'duration without unit',
    '[health]\nexec = ["true"]\ninterval = "10"',
    `Smolfile:3: 'health.interval': invalid duration "10": has no unit`,
    'write a number with a unit (h, m, s, ms), largest unit first, e.g. 500ms, 10s, 2m, 1h or 1m30s',
  ],
  [
    'zero interval',
    '[health]\nexec = ["true"]\ninterval = "0s"',
    `Smolfile:3: 'health.interval': must be longer than zero`,
    'write a positive duration, e.g. "10s"',
  ],
  [
    'zero retries',
    '[health]\nexec = ["true"]\nretries = 0',
    `Smolfile:3: 'health.retries': must be between 1 and 100, got 0`,
    'write the number of consecutive failures that mark the VM unhealthy, e.g. 3',
  ],
  [
    'timeout above interval',
    '[health]\nexec = ["true"]\ninterval = "1s"\ntimeout = "2s"',
    `Smolfile:4: 'health.timeout': timeout (2000 ms) is longer than interval (1000 ms)`,
    'lower timeout or raise interval',
  ],
  // Unknown keys
  ['typo with suggestion', 'imgae = "alpine"', `Smolfile:1: 'imgae': unknown key`, "did you mean 'image'?"],
  [
    'typo inside table',
    'cpus = 1\n[dev]\nport = ["80"]',
    `Smolfile:3: 'dev.port': unknown key in [dev]`,
    "did you mean 'dev.ports'?",
  ],
  [
    'camelCase key',
    '[auth]\nsshAgent = true',
    `Smolfile:2: 'auth.sshAgent': unknown key in [auth]`,
    "did you mean 'auth.ssh_agent'?",
  ],
  ['unknown table', '[devv]\nports = []', `Smolfile:1: 'devv': unknown table [devv]`, 'did you mean [dev]?'],
  [
    'key under the wrong table',
    '[dev]\nimage = "alpine"',
    `Smolfile:2: 'dev.image': 'image' is not a key of [dev]`,
    'move it to the top level (above the first [table])',
  ],
  [
    'dev key at top level',
    'volumes = ["./a:/b"]',
    `Smolfile:1: 'volumes': 'volumes' is not a key of the top level`,
    'move it under [dev]',
  ],
  [
    'unknown key without suggestion',
    '[health]\nexec = ["true"]\nfoo = 1',
    `Smolfile:3: 'health.foo': unknown key in [health]`,
    'remove it; [health] accepts exec, interval, timeout, retries, startup_grace',
  ],
  [
    'quoted odd key',
    '"my key" = 1',
    `Smolfile:1: '"my key"': unknown key`,
    'remove it; the top level accepts image, entrypoint, cmd, env, workdir, cpus, memory, net, storage, overlay, network, dev, artifact, health, auth',
  ],
  // TOML syntax
  [
    'unterminated array',
    'cpus = 2\nenv = ["A=1",\n',
    `Smolfile:3: invalid TOML at column 1: invalid value`,
    'fix the syntax on that line (a Smolfile is TOML: https://toml.io)',
  ],
  [
    'duplicate key',
    'cpus = 1\ncpus = 2',
    `Smolfile:2: invalid TOML at column 1: trying to redefine an already defined table or value`,
    'fix the syntax on that line (a Smolfile is TOML: https://toml.io)',
  ],
  [
    'missing quotes',
    'image = alpine',
    `Smolfile:1: invalid TOML at column 9: invalid value`,
    'fix the syntax on that line (a Smolfile is TOML: https://toml.io)',
  ],
];

describe('bad Smolfiles', () => {
  it('has at least 30 cases', () => {
    expect(BAD.length).toBeGreaterThanOrEqual(30);
  });

  it.each(BAD)('%s', (_what, text, message, remedy) => {
    const err = thrown(() => parseSmolfile(text, 'Smolfile'));
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toBe(message);
    expect(err.remedy).toBe(remedy);
    const m = /^Smolfile:(\d+): (?:'(.*?)': )?/.exec(message);
    expect((err as ConfigError).file).toBe('Smolfile');
    expect((err as ConfigError).line).toBe(Number(m?.[1]));
    expect((err as ConfigError).keyPath).toBe(m?.[2]);
  });

  it('reports the first error in document order', () => {
    expect(thrown(() => parseSmolfile('cpus = 0\nmemory = 1', 'S')).message).toBe(
      `S:1: 'cpus': invalid CPU count "0": must be between 1 and 64`,
    );
  });
});
