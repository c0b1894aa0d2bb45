// The supervisor's own bundle takes exactly the invocation Machines.start writes (src/supervise-fast.ts).
import { parseSupervise } from '../src/supervise-fast';

describe('parseSupervise', () => {
  it("takes `machine _supervise --name N [--image-erofs FILE] [--cold]` as the CLI's command would", () => {
    expect(parseSupervise(['machine', '_supervise', '--name', 'dev'])).toEqual({ name: 'dev', cold: false });
    expect(parseSupervise(['machine', '_supervise', '--name', 'dev', '--image-erofs', '/c/i.erofs', '--cold'])).toEqual(
      { name: 'dev', imageErofs: '/c/i.erofs', cold: true },
    );
  });

  it('leaves anything else to the full CLI', () => {
    for (const args of [
      ['machine', '_supervise'],
      ['machine', '_supervise', '--name'],
      ['machine', '_supervise', '--name', '--cold'],
      ['machine', '_supervise', '--name', 'dev', '--help'],
      ['machine', '_supervise', '--name=dev'],
      ['machine', '_supervise', '--name', 'dev', 'extra'],
      ['machine', 'start', '--name', 'dev'],
    ])
      expect(parseSupervise(args)).toBeUndefined();
  });
});
