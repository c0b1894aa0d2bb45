import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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

describe('command table', () => {
  it('machine --help lists exactly the working machine commands', () => {
    const r = smolvm(['machine', '--help']);
    expect(r.status).toBe(0);
    const listed = [...r.stdout.matchAll(/^ {2}smolvm machine (\S+)/gm)].map((m) => m[1]).sort();
    expect(listed).toEqual([
      'cp',
      'create',
      'delete',
      'exec',
      'fork',
      'images',
      'ls',
      'monitor',
      'prune',
      'resize',
      'run',
      'snapshot',
      'start',
      'status',
      'stop',
    ]);
  });

  it('an unknown subcommand or option is a usage error pointing at the right help', () => {
    const unknown = smolvm(['machine', 'frobnicate']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/^error: Unknown argument: frobnicate; see 'smolvm machine --help'\n$/);
    const option = smolvm(['machine', 'ls', '--frobnicate']);
    expect(option.status).toBe(2);
    expect(option.stderr).toBe("error: Unknown argument: frobnicate; see 'smolvm machine ls --help'\n");
  });

  it('--debug adds a stack trace to the error line', () => {
    // A home of its own: the code cache is written under it (never at the top of the filesystem).
    const home = path.join(os.tmpdir(), `smolvm-frame-${process.pid}`);
    const r = smolvm(['machine', 'status', '--name', 'missing-machine', '--debug'], { SMOLVM_HOME: home });
    fs.rmSync(home, { recursive: true, force: true });
    expect(r.status).toBe(1);
    expect(r.stderr.split('\n')[0]).toMatch(/^error: /);
    expect(r.stderr).toMatch(/\n\s+at /);
  });
});
