import { JsonReader, type JsonReaderOptions } from '../src';

class Bad extends Error {}
const options: JsonReaderOptions = {
  fail: (path, expected, actual) => new Bad(`${path} must be ${expected}, got ${JSON.stringify(actual) ?? 'nothing'}`),
};
const read = (value: unknown, extra: Partial<JsonReaderOptions> = {}) =>
  JsonReader.of(value, 'msg', { ...options, ...extra });

describe('JsonReader', () => {
  it('reads typed fields and treats absent and null alike', () => {
    const r = read({ n: 3, s: 'x', b: true, none: null, list: ['a'], map: { K: 'v' }, kids: [{ id: 1 }], kind: 'tcp' });
    expect([
      r.int('n', 1, 3),
      r.str('s', 1),
      r.bool('b'),
      r.strArray('list'),
      r.strMap('map'),
      r.literal('kind', ['tcp', 'udp']),
    ]).toEqual([3, 'x', true, ['a'], { K: 'v' }, 'tcp']);
    expect([r.optInt('none'), r.intOrNull('none'), r.optStr('gone'), r.strOrNull('none'), r.optArray('none')]).toEqual([
      undefined,
      null,
      undefined,
      null,
      [],
    ]);
    expect(r.array('kids').map((k) => k.int('id'))).toEqual([1]);
    expect(r.unknownKeys(['n', 's', 'b'])).toEqual(['msg.none', 'msg.list', 'msg.map', 'msg.kids', 'msg.kind']);
  });

  it("names the path, the expectation and what it found, through the caller's error", () => {
    const r = read({ n: 70000, s: 'toolong', kids: [{ id: 'x' }], list: ['', 'b'], nested: { deep: 5 } });
    const failure = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        expect(err).toBeInstanceOf(Bad);
        return (err as Error).message;
      }
      throw new Error('nothing was thrown');
    };
    expect(failure(() => r.int('n', 1, 65535))).toBe('msg.n must be an integer from 1 to 65535, got 70000');
    expect(failure(() => r.int('gone', 1))).toBe('msg.gone must be an integer >= 1, got nothing');
    expect(failure(() => r.str('s', 3))).toBe('msg.s must be a string of at most 3 characters, got "toolong"');
    expect(failure(() => r.array('kids')[0].int('id'))).toBe('msg.kids[0].id must be an integer >= 0, got "x"');
    expect(failure(() => r.strArray('list', { minLength: 1 }))).toBe(
      'msg.list must be a list of at most 4096 non-empty strings of at most 131072 characters, got ["","b"]',
    );
    expect(failure(() => r.obj('nested').str('deep'))).toBe(
      'msg.nested.deep must be a string of at most 4096 characters, got 5',
    );
    expect(failure(() => read([1]))).toBe('msg must be an object, got [1]');
    expect(failure(() => r.literal('s', ['a', 'b']))).toBe('msg.s must be one of a, b, got "toolong"');
  });

  it('bounds lists and maps, and refuses NUL only when asked', () => {
    const r = read({ list: ['a', 'b', 'c'], map: { a: '1', b: 2 }, kids: [{}, {}], nul: 'a\0b' });
    expect(() => r.strArray('list', { maxItems: 2 })).toThrow(Bad);
    expect(() => r.strArray('list', {}, (s) => s !== 'b', 'a list without b')).toThrow(
      'msg.list must be a list without b',
    );
    expect(() => r.strMap('map')).toThrow(Bad);
    expect(() => r.array('kids', 1)).toThrow('msg.kids must be a list of at most 1 objects');
    expect(r.str('nul')).toBe('a\0b');
    expect(() => read({ nul: 'a\0b' }, { rejectNul: true }).str('nul')).toThrow(Bad);
    expect(() => read({ list: ['a\0'] }, { rejectNul: true }).strArray('list')).toThrow(Bad);
  });

  it('copies a map without letting "__proto__" reach the prototype', () => {
    const map = read(JSON.parse('{"env": {"__proto__": "x", "A": "1"}}')).strMap('env');
    expect(Object.getPrototypeOf(map)).toBe(Object.prototype);
    expect(Object.keys(map).sort()).toEqual(['A', '__proto__']);
  });
});
