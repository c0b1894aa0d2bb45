import { KeyLocator } from '../src/smolfile/key-locator';
import { formatKeyPath } from '../src/smolfile/key-path';

describe('KeyLocator: line of a key path from the source text', () => {
  const src = [
    '# comment with [brackets] and key = "value"', // 1
    'image = "a]b#c"  # trailing', // 2
    'cmd = [\'[not a table]\', "x\\"]"]', // 3
    'env = [', // 4
    '  # a comment line inside the array', // 5
    '  "A=1",', // 6
    '', // 7
    '  """B=', // 8
    'multi""",', // 9
    "  '''C=[x]''',", // 10
    ']', // 11
    '"quoted.key" = 1', // 12
    'dev.ports = [ "1",', // 13
    '  "2" ]', // 14
    '[ network ]', // 15
    'allow_hosts = [', // 16
    '  "a", "b",', // 17
    '  "c"]', // 18
    '[artifact]', // 19
    'x = { a = 1, b = [', // 20
    '  1, 2 ] }', // 21
    '[[srv]]', // 22
    'n = 1', // 23
    '[[srv]]', // 24
    'n = 2.5', // 25
  ].join('\n');
  const loc = new KeyLocator(src);

  it.each([
    [['image'], 2],
    [['cmd'], 3],
    [['cmd', 1], 3],
    [['env'], 4],
    [['env', 0], 6],
    [['env', 1], 8],
    [['env', 2], 10],
    [['quoted.key'], 12],
    [['dev'], 13],
    [['dev', 'ports', 0], 13],
    [['dev', 'ports', 1], 14],
    [['network'], 15],
    [['network', 'allow_hosts', 1], 17],
    [['network', 'allow_hosts', 2], 18],
    [['artifact', 'x', 'b', 1], 21],
    [['artifact', 'x', 'a'], 20],
    [['srv', 1, 'n'], 25],
    [['srv', 0], 22],
  ] as Array<[Array<string | number>, number]>)('%j is on line %d', (path, line) => {
    expect(loc.line(path)).toBe(line);
  });

  it('falls back to the nearest recorded ancestor, or undefined', () => {
    expect(loc.line(['network', 'allow_cidrs'])).toBe(15);
    expect(loc.line(['env', 9])).toBe(4);
    expect(loc.line(['nope'])).toBeUndefined();
  });

  it('keeps the raw text of scalars so floats can be told from integers', () => {
    expect(loc.raw(['srv', 1, 'n'])).toBe('2.5');
    expect(loc.raw(['artifact', 'x', 'a'])).toBe('1');
  });

  it('handles CRLF line endings', () => {
    const crlf = new KeyLocator('a = 1\r\n[dev]\r\nports = [\r\n "1",\r\n "2"]\r\n');
    expect(crlf.line(['dev', 'ports', 1])).toBe(5);
  });

  it('formats key paths the way users write them', () => {
    expect(formatKeyPath(['dev', 'ports', 1])).toBe('dev.ports[1]');
    expect(formatKeyPath(['a.b', 'c d', 0, 'e'])).toBe('"a.b"."c d"[0].e');
  });
});
