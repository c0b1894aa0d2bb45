import { ExitCode, UsageError, formatError } from '@smolvm/common';
import { DEFAULT_MACHINE_NAME, isValidMachineName, validateMachineName } from '../src';

describe('validateMachineName', () => {
  const good = [
    'default',
    'a',
    '0',
    'web',
    'my-vm',
    'my_vm',
    'vm.1',
    '9lives',
    'a-',
    'a.',
    'x_-.y',
    'r-sandbox',
    'a'.repeat(63),
  ];

  it.each(good)('accepts %j', (name) => {
    expect(() => validateMachineName(name)).not.toThrow();
    expect(isValidMachineName(name)).toBe(true);
  });

  it('accepts the default name', () => {
    expect(DEFAULT_MACHINE_NAME).toBe('default');
    expect(isValidMachineName(DEFAULT_MACHINE_NAME)).toBe(true);
  });

  const bad: Array<[string, string]> = [
    ['', 'must not be empty'],
    ['.', 'is reserved'],
    ['..', 'is reserved'],
    ['a/b', 'contains a path separator'],
    ['/etc', 'contains a path separator'],
    ['../etc', 'contains a path separator'],
    ['a\\b', 'contains a path separator'],
    ['a..b', "must not contain '..'"],
    ['..x', "must not contain '..'"],
    ['-rf', "must not start with '-'"],
    ['--name', "must not start with '-'"],
    ['a b', 'contains whitespace'],
    [' web', 'contains whitespace'],
    ['web\n', 'contains whitespace'],
    ['tab\there', 'contains whitespace'],
    ['nb\u00a0sp', 'contains whitespace'],
    ['nul\0', 'contains a NUL byte'],
    ['bell\x07', 'contains a control character'],
    ['del\x7f', 'contains a control character'],
    ['a'.repeat(64), 'is 64 characters long; the limit is 63'],
    ['Web', 'must be lowercase'],
    ['MY-VM', 'must be lowercase'],
    ['.hidden', 'must start with a lowercase letter or digit'],
    ['_x', 'must start with a lowercase letter or digit'],
    ['a:b', 'contains ":", which is not allowed'],
    ['a@b', 'contains "@", which is not allowed'],
    ['café', 'contains "é", which is not allowed'],
    ['a*', 'contains "*", which is not allowed'],
    ['x%2f', 'contains "%", which is not allowed'],
    ['a+b', 'contains "+", which is not allowed'],
  ];

  it('has at least 20 bad names', () => expect(bad.length).toBeGreaterThanOrEqual(20));

  it.each(bad)('rejects %j: %s', (name, why) => {
    let caught: unknown;
    try {
      validateMachineName(name);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(UsageError);
    const err = caught as UsageError;
    expect(err.message).toContain(why);
    expect(err.message.startsWith('invalid machine name ')).toBe(true);
    expect(err.exitCode).toBe(ExitCode.Usage);
    expect(err.remedy).toBeTruthy();
    // One line even for names with newlines or NULs: the name is shown escaped.
    expect(formatError(err)).not.toMatch(/[\n\0]/);
    expect(isValidMachineName(name)).toBe(false);
  });

  it('suggests the lowercase spelling when that is valid', () => {
    expect(() => validateMachineName('MyVm')).toThrow(
      expect.objectContaining({ remedy: 'use lowercase, for example "myvm"' }),
    );
    expect(() => validateMachineName('My Vm')).toThrow(
      expect.objectContaining({ message: expect.stringContaining('whitespace') }),
    );
  });

  it('states the rules in the remedy', () => {
    expect(() => validateMachineName('a:b')).toThrow(
      expect.objectContaining({ remedy: expect.stringContaining("a-z, 0-9, '_', '.' and '-'") }),
    );
  });

  it.each([undefined, null, 42, {}])('rejects the non-string %p', (value) => {
    expect(() => validateMachineName(value)).toThrow(UsageError);
    expect(() => validateMachineName(value)).toThrow(/expected a string/);
  });

  it('clips very long names in the message', () => {
    const err = (() => {
      try {
        validateMachineName('a'.repeat(500));
      } catch (e) {
        return e as Error;
      }
      throw new Error('no error');
    })();
    expect(err.message.length).toBeLessThan(200);
  });
});
