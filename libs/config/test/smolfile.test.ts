import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, NotFoundError } from '@smolvm/common';
import { DEFAULT_HEALTH_INTERVAL_MS, loadSmolfile, parseSmolfile, type Smolfile } from '../src';
import { REFERENCE_SMOLFILE } from './fixtures';
import { thrown } from './helpers';

describe('parseSmolfile: the reference example, every key', () => {
  it('parses every key into typed values', () => {
    const expected: Smolfile = {
      file: '/proj/Smolfile',
      image: 'python:3.12-alpine',
      entrypoint: ['/app/run'],
      cmd: ['serve'],
      env: [
        { name: 'PORT', value: '8080' },
        { name: 'DEBUG', value: '1' },
      ],
      workdir: '/app',
      cpus: 2,
      memoryMib: 1024,
      net: true,
      storageGib: 40,
      overlayGib: 4,
      network: {
        allowHosts: ['api.stripe.com'],
        allowCidrs: [{ family: 4, address: '10.0.0.0', prefix: 8, cidr: '10.0.0.0/8' }],
      },
      dev: {
        volumes: [{ hostPath: '/proj/src', guestPath: '/app', readOnly: false }],
        ports: [{ hostPort: 8080, guestPort: 8080 }],
        init: ['pip install -r requirements.txt'],
        env: [{ name: 'APP_MODE', value: 'dev' }],
        workdir: '/app',
      },
      artifact: {
        cpus: 4,
        memoryMib: 2048,
        entrypoint: ['/app/run'],
        platform: { os: 'linux', architecture: 'amd64' },
      },
      health: {
        exec: ['curl', '-f', 'http://127.0.0.1:8080/health'],
        intervalMs: 10_000,
        timeoutMs: 2_000,
        retries: 3,
        startupGraceMs: 20_000,
      },
      auth: { sshAgent: true },
    };
    expect(parseSmolfile(REFERENCE_SMOLFILE, '/proj/Smolfile')).toEqual(expected);
  });

  it('an empty Smolfile is valid and sets nothing', () => {
    expect(parseSmolfile('', 'Smolfile')).toEqual({
      file: 'Smolfile',
      env: [],
      network: { allowHosts: [], allowCidrs: [] },
      dev: { volumes: [], ports: [], init: [], env: [] },
      artifact: {},
      auth: {},
    });
  });

  it('accepts size strings for memory and disks, dotted keys, inline tables and a BOM', () => {
    const smol = parseSmolfile(
      '\uFEFFmemory = "2G"\nstorage = "1T"\noverlay = "4GiB"\ndev.ports = ["3000"]\nartifact = { memory = "512M", oci_platform = "linux/arm64/v8" }\n',
      'Smolfile',
      { baseDir: '/x' },
    );
    expect(smol.memoryMib).toBe(2048);
    expect(smol.storageGib).toBe(1024);
    expect(smol.overlayGib).toBe(4);
    expect(smol.dev.ports).toEqual([{ hostPort: 3000, guestPort: 3000 }]);
    expect(smol.artifact).toEqual({ memoryMib: 512, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
  });

  it('fills health defaults, capping the default timeout at the interval', () => {
    expect(parseSmolfile('[health]\nexec = ["true"]').health).toEqual({
      exec: ['true'],
      intervalMs: DEFAULT_HEALTH_INTERVAL_MS,
      timeoutMs: 5_000,
      retries: 3,
      startupGraceMs: 0,
    });
    expect(parseSmolfile('[health]\nexec = ["true"]\ninterval = "2s"').health?.timeoutMs).toBe(2_000);
  });

  it('normalizes and deduplicates allow lists', () => {
    const smol = parseSmolfile(
      '[network]\nallow_hosts = ["API.example.com", "api.example.com."]\nallow_cidrs = ["::1", "0:0::1/128"]',
    );
    expect(smol.network.allowHosts).toEqual(['api.example.com']);
    expect(smol.network.allowCidrs.map((c) => c.cidr)).toEqual(['::1/128']);
  });
});

describe('loadSmolfile', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolfile-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('resolves [dev] volume host paths against the Smolfile directory, not the cwd', () => {
    fs.mkdirSync(path.join(dir, 'proj'));
    const file = path.join(dir, 'proj', 'Smolfile');
    fs.writeFileSync(file, '[dev]\nvolumes = ["./src:/app", "../data:/data:ro", "/abs:/abs"]\n');
    expect(loadSmolfile(file).dev.volumes).toEqual([
      { hostPath: path.join(dir, 'proj', 'src'), guestPath: '/app', readOnly: false },
      { hostPath: path.join(dir, 'data'), guestPath: '/data', readOnly: true },
      { hostPath: '/abs', guestPath: '/abs', readOnly: false },
    ]);
  });

  it('accepts a directory, reading the Smolfile inside it', () => {
    fs.writeFileSync(path.join(dir, 'Smolfile'), 'cpus = 3\n');
    const smol = loadSmolfile(dir);
    expect(smol.cpus).toBe(3);
    expect(smol.file).toBe(path.join(dir, 'Smolfile'));
  });

  it('reports errors with the path it was given', () => {
    const file = path.join(dir, 'Smolfile');
    fs.writeFileSync(file, 'cpus = 1\n\ncpus2 = 0\n');
    expect(thrown(() => loadSmolfile(file)).message).toBe(`${file}:3: 'cpus2': unknown key`);
  });

  it('a missing file is a NotFoundError naming the path', () => {
    const err = thrown(() => loadSmolfile(path.join(dir, 'nope')));
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err).not.toBeInstanceOf(ConfigError);
    expect(err.message).toBe(`Smolfile "${path.join(dir, 'nope')}" does not exist`);
    expect(err.remedy).toBe('check the path passed to --smolfile/-s');
  });
});
