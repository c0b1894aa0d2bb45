import os from 'node:os';
import { UsageError } from '@smolvm/common';
import {
  mergeEnv,
  parseEnvEntry,
  parseEnvFlag,
  parseGuestPath,
  parsePort,
  parseVolume,
  type PortMapping,
  type VolumeMount,
} from '../src';
import { thrown } from './helpers';

describe('parseVolume', () => {
  const good: Array<[string, VolumeMount]> = [
    ['./src:/app', { hostPath: '/base/src', guestPath: '/app', readOnly: false }],
    ['src:/app', { hostPath: '/base/src', guestPath: '/app', readOnly: false }],
    ['/data:/data:ro', { hostPath: '/data', guestPath: '/data', readOnly: true }],
    ['/data:/data:rw', { hostPath: '/data', guestPath: '/data', readOnly: false }],
    ['../up:/mnt/up', { hostPath: '/up', guestPath: '/mnt/up', readOnly: false }],
    ['.:/workspace//sub/./dir/', { hostPath: '/base', guestPath: '/workspace/sub/dir', readOnly: false }],
    ['~/code:/code', { hostPath: `${os.homedir()}/code`, guestPath: '/code', readOnly: false }],
  ];
  it.each(good)('%s', (spec, expected) => {
    expect(parseVolume(spec, '/base')).toEqual(expected);
  });

  it('resolves relative host paths against the current directory by default', () => {
    expect(parseVolume('x:/x').hostPath).toBe(`${process.cwd()}/x`);
  });

  const bad: Array<[string, string]> = [
    ['/data', 'missing ":GUEST" part'],
    ['/a:/b:ro:x', 'too many ":" separators'],
    [':/app', 'host path is empty'],
    ['./src:app', 'guest path must be absolute (start with /)'],
    ['./src:', 'guest path is empty'],
    ['./src:/app/../etc', 'guest path must not contain ".." components'],
    ['./src:/', 'guest path must not be the root directory /'],
    ['./src:/app:rx', 'unknown option "rx" (only "ro" or "rw")'],
    ['./src:/app:RO', 'unknown option "RO" (only "ro" or "rw")'],
  ];
  it.each(bad)('rejects %j', (spec, why) => {
    const err = thrown(() => parseVolume(spec, '/base'));
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toBe(`invalid volume ${JSON.stringify(spec)}: ${why}`);
    expect(err.remedy).toBe('write HOST:GUEST[:ro], e.g. ./src:/app or ./data:/data:ro');
  });
});

describe('parseGuestPath (workdir)', () => {
  it('normalizes and allows / only when asked', () => {
    expect(parseGuestPath('/app//x/')).toBe('/app/x');
    expect(parseGuestPath('/', 'workdir', { allowRoot: true })).toBe('/');
    expect(thrown(() => parseGuestPath('/', 'workdir')).message).toBe(
      'invalid workdir "/": must not be the root directory /',
    );
    expect(thrown(() => parseGuestPath('app', 'workdir')).message).toBe(
      'invalid workdir "app": must be absolute (start with /)',
    );
    expect(thrown(() => parseGuestPath('/a\0b')).message).toBe(
      'invalid guest path "/a\\u0000b": contains a NUL character',
    );
  });
});

describe('parsePort', () => {
  const good: Array<[string, PortMapping]> = [
    ['8080:80', { hostPort: 8080, guestPort: 80 }],
    ['8080', { hostPort: 8080, guestPort: 8080 }],
    ['1:65535', { hostPort: 1, guestPort: 65535 }],
    ['8080:80/tcp', { hostPort: 8080, guestPort: 80 }],
    ['443/TCP', { hostPort: 443, guestPort: 443 }],
  ];
  it.each(good)('%s', (spec, expected) => {
    expect(parsePort(spec)).toEqual(expected);
  });

  const REMEDY = 'write HOST:GUEST or PORT with ports 1-65535, e.g. 8080:80 or 8080';
  const bad: Array<[string, string, string]> = [
    ['', 'port is empty', REMEDY],
    ['80:', 'guest port is empty', REMEDY],
    [':80', 'host port is empty', REMEDY],
    ['0', 'port 0 is out of range 1-65535', REMEDY],
    ['8080:0', 'guest port 0 is out of range 1-65535', REMEDY],
    ['65536:80', 'host port 65536 is out of range 1-65535', REMEDY],
    ['http', 'port "http" is not a number', REMEDY],
    ['80:x', 'guest port "x" is not a number', REMEDY],
    ['-1', 'port ranges are not supported', 'map each port separately, e.g. 8080:80'],
    ['8000-8010:8000-8010', 'port ranges are not supported', 'map each port separately, e.g. 8080:80'],
    ['127.0.0.1:8080:80', 'binding to a specific host address is not supported', 'write HOST:GUEST, e.g. 8080:80'],
    [
      '53:53/udp',
      'protocol "udp" is not supported; port forwarding is TCP only',
      'drop the protocol suffix, e.g. 8080:80',
    ],
  ];
  it.each(bad)('rejects %j', (spec, why, remedy) => {
    const err = thrown(() => parsePort(spec));
    expect(err.message).toBe(`invalid port mapping ${JSON.stringify(spec)}: ${why}`);
    expect(err.remedy).toBe(remedy);
  });
});

describe('environment variables', () => {
  it('parses NAME=VALUE keeping "=" and empty values', () => {
    expect(parseEnvEntry('PORT=8080')).toEqual({ name: 'PORT', value: '8080' });
    expect(parseEnvEntry('OPTS=a=b=c')).toEqual({ name: 'OPTS', value: 'a=b=c' });
    expect(parseEnvEntry('EMPTY=')).toEqual({ name: 'EMPTY', value: '' });
    expect(parseEnvEntry('_x9=1')).toEqual({ name: '_x9', value: '1' });
  });

  const REMEDY = 'write NAME=VALUE where NAME is letters, digits and _ and does not start with a digit, e.g. PORT=8080';
  const bad: Array<[string, string]> = [
    ['PORT', 'missing "="'],
    ['=1', 'name is empty'],
    ['1X=2', 'name "1X" is not a valid variable name'],
    ['MY-VAR=1', 'name "MY-VAR" is not a valid variable name'],
    ['A B=1', 'name "A B" is not a valid variable name'],
    ['A=\0', 'value contains a NUL character'],
  ];
  it.each(bad)('parseEnvEntry rejects %j', (spec, why) => {
    const err = thrown(() => parseEnvEntry(spec));
    expect(err.message).toBe(`invalid environment variable ${JSON.stringify(spec)}: ${why}`);
    expect(err.remedy).toBe(REMEDY);
  });

  it('-e NAME takes the value from the host environment, and fails loudly when unset', () => {
    expect(parseEnvFlag('TOKEN', { TOKEN: 's3cret' })).toEqual({ name: 'TOKEN', value: 's3cret' });
    expect(parseEnvFlag('EMPTY', { EMPTY: '' })).toEqual({ name: 'EMPTY', value: '' });
    expect(parseEnvFlag('A=1', {})).toEqual({ name: 'A', value: '1' });
    const err = thrown(() => parseEnvFlag('TOKEN', {}));
    expect(err.message).toBe('invalid environment variable "TOKEN": no "=" and TOKEN is not set on the host');
    expect(err.remedy).toBe('write TOKEN=VALUE, or export TOKEN before running smolvm');
    expect(thrown(() => parseEnvFlag('1BAD', { '1BAD': 'x' })).message).toBe(
      'invalid environment variable "1BAD": name "1BAD" is not a valid variable name',
    );
  });

  it('mergeEnv: later wins per name, first position kept', () => {
    expect(
      mergeEnv(
        [
          { name: 'A', value: '1' },
          { name: 'B', value: '2' },
        ],
        [
          { name: 'C', value: '3' },
          { name: 'A', value: 'x' },
        ],
      ),
    ).toEqual([
      { name: 'A', value: 'x' },
      { name: 'B', value: '2' },
      { name: 'C', value: '3' },
    ]);
  });
});
