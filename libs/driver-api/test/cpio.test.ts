import { execFileSync } from 'node:child_process';
import { cpioNewc } from '../src/conformance';

describe('cpioNewc', () => {
  it('writes an archive that cpio(1) lists with the right types, modes and link targets', () => {
    const archive = cpioNewc([
      { kind: 'dir', path: 'bin' },
      { kind: 'file', path: 'bin/hello', data: 'hi there\n', mode: 0o755 },
      { kind: 'symlink', path: 'bin/sh', target: 'busybox' },
      { kind: 'chardev', path: 'dev/console', major: 5, minor: 1 },
      { kind: 'file', path: '/init', data: Buffer.from('#!/bin/sh\n') },
    ]);
    expect(archive.length % 4).toBe(0);
    const listing = execFileSync('cpio', ['-itv', '--quiet'], { input: archive, encoding: 'utf8' }).trim().split('\n');
    expect(listing).toHaveLength(5);
    expect(listing[0]).toMatch(/^drwxr-xr-x .* bin$/);
    expect(listing[1]).toMatch(/^-rwxr-xr-x .* 9 .* bin\/hello$/);
    expect(listing[2]).toMatch(/^lrwxrwxrwx .* bin\/sh -> busybox$/);
    expect(listing[3]).toMatch(/^crw------- .* 5,\s+1 .* dev\/console$/);
    expect(listing[4]).toMatch(/^-rw-r--r-- .* init$/);
  });

  it('keeps file contents byte for byte (cpio -i --to-stdout)', () => {
    const data = Buffer.from([0, 1, 2, 3, 255, 10, 13]);
    const archive = cpioNewc([{ kind: 'file', path: 'blob', data }]);
    expect(execFileSync('cpio', ['-i', '--to-stdout', '--quiet', 'blob'], { input: archive })).toEqual(data);
  });
});
