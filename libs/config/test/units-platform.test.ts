import {
  formatPlatform,
  parseCpus,
  parseDiskSize,
  parseDuration,
  parseMemory,
  parsePlatform,
  type Platform,
} from '../src';
import { thrown } from './helpers';

describe('parseMemory (MiB)', () => {
  it.each([
    ['512', 512],
    ['512M', 512],
    ['512m', 512],
    ['512MB', 512],
    ['512MiB', 512],
    ['2G', 2048],
    ['2GiB', 2048],
    ['2gb', 2048],
    ['1.5G', 1536],
    ['1T', 1048576],
    ['65536K', 64],
    [' 1024 ', 1024],
    [1024, 1024],
    ['64', 64],
  ] as Array<[string | number, number]>)('%j -> %d', (spec, mib) => {
    expect(parseMemory(spec)).toBe(mib);
  });

  const REMEDY = 'write a whole number of MiB or a size with a unit, e.g. 512, 512M, 2G or 2GiB';
  it.each([
    ['63', '63 MiB is below the minimum of 64 MiB'],
    ['0', 'must be greater than zero'],
    ['-512', 'must be greater than zero'],
    ['2X', 'unknown unit "X"'],
    ['2PB', 'unknown unit "PB"'],
    ['abc', 'not a number with an optional unit'],
    ['', 'not a number with an optional unit'],
    ['1.1G', 'is not a whole number of MiB'],
    ['2T', '2097152 MiB is above the maximum of 1048576 MiB'],
    [1.5, 'is not a whole number of MiB'],
  ] as Array<[string | number, string]>)('rejects %j', (spec, why) => {
    const err = thrown(() => parseMemory(spec));
    expect(err.message).toBe(`invalid memory size ${JSON.stringify(String(spec))}: ${why}`);
    expect(err.remedy).toBe(REMEDY);
  });
});

describe('parseDiskSize (GiB)', () => {
  it.each([
    ['20', 20],
    ['20G', 20],
    ['20GiB', 20],
    ['1T', 1024],
    ['2048M', 2],
    [40, 40],
  ] as Array<[string | number, number]>)('%j -> %d', (spec, gib) => {
    expect(parseDiskSize(spec)).toBe(gib);
  });

  it.each([
    ['-5', 'must be greater than zero'],
    ['0', 'must be greater than zero'],
    ['512M', 'is not a whole number of GiB'],
    ['17T', '17408 GiB is above the maximum of 16384 GiB'],
    ['20Q', 'unknown unit "Q"'],
  ])('rejects %j', (spec, why) => {
    const err = thrown(() => parseDiskSize(spec));
    expect(err.message).toBe(`invalid disk size ${JSON.stringify(spec)}: ${why}`);
    expect(err.remedy).toBe('write a whole number of GiB or a size with a unit, e.g. 20, 20G, 20GiB or 1T');
  });
});

describe('parseCpus', () => {
  it('accepts 1..64', () => {
    expect(parseCpus('1')).toBe(1);
    expect(parseCpus(64)).toBe(64);
    expect(parseCpus(' 8 ')).toBe(8);
  });
  it.each([
    ['0', 'must be between 1 and 64'],
    ['65', 'must be between 1 and 64'],
    ['2.5', 'not a whole number'],
    ['two', 'not a whole number'],
    ['', 'not a whole number'],
  ])('rejects %j', (spec, why) => {
    const err = thrown(() => parseCpus(spec));
    expect(err.message).toBe(`invalid CPU count ${JSON.stringify(spec)}: ${why}`);
    expect(err.remedy).toBe('write a whole number from 1 to 64, e.g. 2');
  });
});

describe('parseDuration (ms)', () => {
  it.each([
    ['10s', 10_000],
    ['500ms', 500],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['1m30s', 90_000],
    ['1h2m3s4ms', 3_723_004],
    ['1.5s', 1_500],
    ['1.1s', 1_100],
    ['0', 0],
    ['0s', 0],
  ])('%s -> %d', (spec, ms) => {
    expect(parseDuration(spec)).toBe(ms);
  });

  const REMEDY = 'write a number with a unit (h, m, s, ms), largest unit first, e.g. 500ms, 10s, 2m, 1h or 1m30s';
  it.each([
    ['10', 'has no unit'],
    ['', 'is empty'],
    ['-5s', 'must not be negative'],
    ['10x', 'cannot read "10x"'],
    ['1s 2ms', 'cannot read " 2ms"'],
    ['30s1m', 'unit "m" is repeated or out of order'],
    ['1s1s', 'unit "s" is repeated or out of order'],
    ['0.5ms', 'is not a whole number of milliseconds'],
    ['10S', 'cannot read "10S"'],
  ])('rejects %j', (spec, why) => {
    const err = thrown(() => parseDuration(spec));
    expect(err.message).toBe(`invalid duration ${JSON.stringify(spec)}: ${why}`);
    expect(err.remedy).toBe(REMEDY);
  });
});

describe('parsePlatform', () => {
  it.each([
    ['linux/amd64', { os: 'linux', architecture: 'amd64' }],
    ['linux/arm64', { os: 'linux', architecture: 'arm64' }],
    ['linux/arm64/v8', { os: 'linux', architecture: 'arm64', variant: 'v8' }],
    ['linux/amd64/v3', { os: 'linux', architecture: 'amd64', variant: 'v3' }],
  ] as Array<[string, Platform]>)('%s', (spec, expected) => {
    expect(parsePlatform(spec)).toEqual(expected);
    expect(formatPlatform(parsePlatform(spec))).toBe(spec);
  });

  it.each([
    ['linux', 'expected OS/ARCH or OS/ARCH/VARIANT', 'write OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64/v8'],
    [
      'linux/arm64/v8/x',
      'expected OS/ARCH or OS/ARCH/VARIANT',
      'write OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64/v8',
    ],
    ['windows/amd64', 'OS "windows" is not supported; smolvm guests run Linux', 'write linux/amd64'],
    ['linux/x86_64', 'architecture "x86_64" is not supported (supported: amd64, arm64)', 'did you mean linux/amd64?'],
    ['linux/aarch64', 'architecture "aarch64" is not supported (supported: amd64, arm64)', 'did you mean linux/arm64?'],
    ['linux/amd46', 'architecture "amd46" is not supported (supported: amd64, arm64)', 'did you mean linux/amd64?'],
    [
      'linux/s390x',
      'architecture "s390x" is not supported (supported: amd64, arm64)',
      'write OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64/v8',
    ],
    ['linux/arm64/v7', 'variant "v7" is not valid for arm64', 'use one of v8, v9, or omit the variant'],
    ['linux/amd64/', 'variant "" is not valid for amd64', 'use one of v1, v2, v3, v4, or omit the variant'],
  ])('rejects %j', (spec, why, remedy) => {
    const err = thrown(() => parsePlatform(spec));
    expect(err.message).toBe(`invalid platform ${JSON.stringify(spec)}: ${why}`);
    expect(err.remedy).toBe(remedy);
  });
});
