import { smolvm } from './helpers';
import { version } from '../package.json';

describe('smolvm CLI frame', () => {
  it('prints its version', () => {
    const r = smolvm(['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(version);
  });

  it('prints help listing the global options, exit 0', () => {
    const r = smolvm(['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('smolvm <command> [options]');
    expect(r.stdout).toContain('--debug');
  });

  it('a missing command is a usage error: one line on stderr, exit 2', () => {
    const r = smolvm([]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe("error: Name a command; see 'smolvm --help'\n");
  });
});
