// What `run` of a packed running machine runs in it: COMMAND after the entrypoint, else the
// recorded command; with neither it refuses (a resumed machine has nothing to start by itself).
import { UsageError } from '@smolvm/common';
import { snapshotRunArgv } from '../src/commands/pack/run-snapshot';

describe('snapshotRunArgv', () => {
  it('runs the given command after the entrypoint, in place of the recorded one', () => {
    expect(snapshotRunArgv({ entrypoint: ['/entry'], cmd: ['serve'] }, ['cat', '/w.txt'])).toEqual([
      '/entry',
      'cat',
      '/w.txt',
    ]);
  });

  it('runs the recorded command without one', () => {
    expect(snapshotRunArgv({ entrypoint: [], cmd: ['/bin/sh', '-c', 'date'] }, [])).toEqual(['/bin/sh', '-c', 'date']);
  });

  it('refuses with no command at all, saying how to give one', () => {
    expect(() => snapshotRunArgv({ entrypoint: [], cmd: [] }, [])).toThrow(UsageError);
    expect(() => snapshotRunArgv({ entrypoint: [], cmd: [] }, [])).toThrow(/records no command/);
  });
});
