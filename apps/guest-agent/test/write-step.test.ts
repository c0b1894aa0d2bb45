// The setup's file writes (resolv.conf, hostname, hosts): an unchanged file is left alone, anything
// else ends up exactly as asked, a symlink in its place replaced rather than written through.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runStep } from '../src/system';

let dir: string;
beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-write-step-'))));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const write = (file: string, content: string) => runStep({ op: 'write', path: file, content, onlyIfMissing: false });

describe('the write step', () => {
  it('leaves a file that already has the content untouched (no write to a machine disk)', () => {
    const file = path.join(dir, 'resolv.conf');
    fs.writeFileSync(file, 'nameserver 10.0.2.3\n');
    fs.utimesSync(file, 1_000_000, 1_000_000);
    write(file, 'nameserver 10.0.2.3\n');
    expect(fs.statSync(file).mtimeMs).toBe(1_000_000_000);
  });

  it('rewrites a file whose content differs, also at the same length', () => {
    const file = path.join(dir, 'hostname');
    fs.writeFileSync(file, 'aaaa\n');
    write(file, 'bbbb\n');
    expect(fs.readFileSync(file, 'utf8')).toBe('bbbb\n');
    write(file, 'longer name\n');
    expect(fs.readFileSync(file, 'utf8')).toBe('longer name\n');
  });

  it('replaces a symlink with the same content behind it instead of writing through it', () => {
    const target = path.join(dir, 'target');
    fs.writeFileSync(target, 'same\n');
    const link = path.join(dir, 'resolv.conf');
    fs.symlinkSync(target, link);
    write(link, 'same\n');
    expect(fs.lstatSync(link).isFile()).toBe(true);
    expect(fs.readFileSync(link, 'utf8')).toBe('same\n');
    expect(fs.readFileSync(target, 'utf8')).toBe('same\n');
  });
});
