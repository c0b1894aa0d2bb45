// A plain `machine start` runs from its own bundle (src/start-fast.ts), and the loader spawns its
// early supervisor (src/prestart.ts): both take exactly the forms parsePlainStart takes.
import { parsePlainStart } from '../src/plain-start';

describe('parsePlainStart', () => {
  it("takes the plain forms of `machine start` as the CLI's command would", () => {
    expect(parsePlainStart(['machine', 'start'])).toEqual({ name: 'default', debug: false, quiet: false });
    expect(parsePlainStart(['machine', 'start', '--name', 'dev'])).toEqual({ name: 'dev', debug: false, quiet: false });
    expect(parsePlainStart(['machine', 'start', '-n', 'dev', '--debug', '--quiet'])).toEqual({
      name: 'dev',
      debug: true,
      quiet: true,
    });
    expect(parsePlainStart(['machine', 'start', '--quiet', '--name=dev'])).toEqual({
      name: 'dev',
      debug: false,
      quiet: true,
    });
  });

  it('leaves anything else to the full CLI', () => {
    for (const args of [
      ['machine', 'start', '--cold'],
      ['machine', 'start', '--help'],
      ['machine', 'start', '-h'],
      ['machine', 'start', '--name'],
      ['machine', 'start', '--name', '--debug'],
      ['machine', 'start', '--name='],
      ['machine', 'start', 'dev'],
      ['machine', 'start', '--name', 'dev', '--json'],
      ['machine', 'stop', '--name', 'dev'],
      ['--debug', 'machine', 'start'],
    ])
      expect(parsePlainStart(args)).toBeUndefined();
  });
});
