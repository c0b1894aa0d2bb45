// Typed access to parsed TOML values that turns every mismatch into a ConfigError pointing at
// file:line and the key path, so validators read like a schema instead of error plumbing.
import { ConfigError, UsageError } from '@smolvm/common';
import type { TomlValueWithoutBigInt as TomlValue, TomlTableWithoutBigInt as TomlTable } from 'smol-toml';
import { KeyLocator } from './key-locator';
import { formatKeyPath, type KeyPath } from './key-path';

export type { TomlValue, TomlTable };

/** How each key is written correctly, used as the remedy for wrong types. */
const EXAMPLES: Record<string, string> = {
  image: 'image = "python:3.12-alpine"',
  entrypoint: 'entrypoint = ["/app/run"]',
  cmd: 'cmd = ["serve"]',
  env: 'env = ["PORT=8080", "DEBUG=1"]',
  workdir: 'workdir = "/app"',
  cpus: 'cpus = 2',
  memory: 'memory = 1024 (MiB) or memory = "2G"',
  net: 'net = true',
  storage: 'storage = 40 (GiB) or storage = "40G"',
  overlay: 'overlay = 4 (GiB) or overlay = "4G"',
  network: '[network] followed by allow_hosts = [...] and allow_cidrs = [...]',
  'network.allow_hosts': 'allow_hosts = ["api.stripe.com"]',
  'network.allow_cidrs': 'allow_cidrs = ["10.0.0.0/8"]',
  dev: '[dev] followed by volumes, ports, init, env, workdir',
  'dev.volumes': 'volumes = ["./src:/app"]',
  'dev.ports': 'ports = ["8080:8080"]',
  'dev.init': 'init = ["pip install -r requirements.txt"]',
  'dev.env': 'env = ["APP_MODE=dev"]',
  'dev.workdir': 'workdir = "/app"',
  artifact: '[artifact] followed by cpus, memory, entrypoint, oci_platform',
  'artifact.cpus': 'cpus = 4',
  'artifact.memory': 'memory = 2048',
  'artifact.entrypoint': 'entrypoint = ["/app/run"]',
  'artifact.oci_platform': 'oci_platform = "linux/amd64"',
  health: '[health] followed by exec, interval, timeout, retries, startup_grace',
  'health.exec': 'exec = ["curl", "-f", "http://127.0.0.1:8080/health"]',
  'health.interval': 'interval = "10s"',
  'health.timeout': 'timeout = "2s"',
  'health.retries': 'retries = 3',
  'health.startup_grace': 'startup_grace = "20s"',
  auth: '[auth] followed by ssh_agent = true',
  'auth.ssh_agent': 'ssh_agent = true',
};

const FLOAT_SYNTAX = /^[+-]?(\d[\d_]*)?(\.\d|[eE]|inf|nan)/;

export class Reader {
  constructor(
    readonly file: string,
    private readonly locator: KeyLocator,
  ) {}

  error(path: KeyPath, message: string, remedy?: string, cause?: unknown): ConfigError {
    return new ConfigError(
      message,
      { file: this.file, line: this.locator.line(path), keyPath: formatKeyPath(path) },
      { remedy, cause },
    );
  }

  typeName(path: KeyPath, value: TomlValue): string {
    if (typeof value === 'number') {
      const raw = this.locator.raw(path);
      return Number.isInteger(value) && !(raw !== undefined && FLOAT_SYNTAX.test(raw)) ? 'integer' : 'float';
    }
    if (typeof value === 'string' || typeof value === 'boolean') return typeof value;
    if (Array.isArray(value)) return 'array';
    if (value instanceof Date) return 'date';
    return 'table';
  }

  typeError(path: KeyPath, expected: string, value: TomlValue): ConfigError {
    const example = EXAMPLES[formatKeyPath(path.filter((seg) => typeof seg === 'string'))];
    const what =
      path.length > 0 && typeof path[path.length - 1] === 'number'
        ? `each element must be ${expected}`
        : `expected ${expected}`;
    return this.error(
      path,
      `${what}, got ${article(this.typeName(path, value))}`,
      example ? `write it like: ${example}` : undefined,
    );
  }

  /** Runs a value parser; its UsageError becomes a ConfigError at `path`, keeping the remedy. */
  parse<T>(path: KeyPath, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof UsageError && !(err instanceof ConfigError))
        throw this.error(path, err.message, err.remedy, err);
      throw err;
    }
  }

  table(path: KeyPath, value: TomlValue): TomlTable {
    if (this.typeName(path, value) !== 'table') throw this.typeError(path, 'a table', value);
    return value as TomlTable;
  }

  string(path: KeyPath, value: TomlValue): string {
    if (typeof value !== 'string') throw this.typeError(path, 'a string', value);
    return value;
  }

  boolean(path: KeyPath, value: TomlValue): boolean {
    if (typeof value !== 'boolean') throw this.typeError(path, 'true or false', value);
    return value;
  }

  integer(path: KeyPath, value: TomlValue): number {
    if (this.typeName(path, value) !== 'integer') throw this.typeError(path, 'an integer', value);
    return value as number;
  }

  /** An integer (in the key's documented unit) or a string with a unit. */
  amount(path: KeyPath, value: TomlValue): number | string {
    if (typeof value === 'string' || this.typeName(path, value) === 'integer') return value as number | string;
    throw this.typeError(path, 'an integer or a size string', value);
  }

  list<T>(path: KeyPath, value: TomlValue, element: (path: KeyPath, value: TomlValue) => T): T[] {
    if (!Array.isArray(value)) throw this.typeError(path, 'an array', value);
    return value.map((v, i) => element([...path, i], v));
  }

  strings(path: KeyPath, value: TomlValue): string[] {
    return this.list(path, value, (p, v) => this.string(p, v));
  }

  /** A command vector: at least one element, and a non-empty program name. */
  argv(path: KeyPath, value: TomlValue): string[] {
    if (typeof value === 'string') {
      throw this.error(
        path,
        'expected an array of strings (exec form), got a string',
        `write it like: ${formatKeyPath(path.slice(-1))} = [${['sh', '-c', value].map((a) => JSON.stringify(a)).join(', ')}]`,
      );
    }
    const argv = this.strings(path, value);
    if (argv.length === 0)
      throw this.error(path, 'must not be an empty array', 'list the program and its arguments, or remove the key');
    if (argv[0] === '')
      throw this.error(
        [...path, 0],
        'program name is empty',
        'the first element is the program to run, e.g. "/app/run"',
      );
    return argv;
  }
}

function article(typeName: string): string {
  return /^[aeiou]/.test(typeName) ? `an ${typeName}` : `a ${typeName}`;
}
