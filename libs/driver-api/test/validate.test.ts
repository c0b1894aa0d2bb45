import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { InvalidVmSpecError, validateVmSpec, type DriverFeatures, type VmSpec } from '../src';

let dir: string;
let server: net.Server;
let base: VmSpec;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-validate-'));
  fs.writeFileSync(path.join(dir, 'vmlinux'), 'k');
  fs.writeFileSync(path.join(dir, 'disk.img'), '');
  fs.mkdirSync(path.join(dir, 'share'));
  server = net.createServer();
  await new Promise<void>((resolve) => server.listen(path.join(dir, 'agent.sock'), resolve));
  base = {
    kernel: path.join(dir, 'vmlinux'),
    cpus: 1,
    memoryMiB: 256,
    agent: { socketPath: path.join(dir, 'agent.sock') },
    consoleLog: path.join(dir, 'console.log'),
    runDir: path.join(dir, 'run'),
  };
});

afterAll(() => {
  server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function fieldOf(spec: Partial<VmSpec>, features?: DriverFeatures): string | undefined {
  try {
    validateVmSpec({ ...base, ...spec }, features);
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidVmSpecError);
    return (err as InvalidVmSpecError).field;
  }
}

describe('validateVmSpec', () => {
  it('accepts a complete, correct spec', () => {
    expect(
      fieldOf({
        cmdline: ['root=/dev/vda', 'x="a b"', 'systemd.setenv=A=B'],
        disks: [{ id: 'root.fs-1', path: path.join(dir, 'disk.img'), readOnly: true, format: 'raw' }],
        shares: [{ tag: 'work', hostPath: path.join(dir, 'share'), readOnly: false }],
        network: { socketPath: path.join(dir, 'agent.sock'), mac: '52:54:00:12:34:56' },
      }),
    ).toBeUndefined();
  });

  it.each<[string, Partial<VmSpec>]>([
    ['kernel', { kernel: 'relative/vmlinux' }],
    ['kernel', { kernel: '/nonexistent/vmlinux' }],
    ['initrd', { initrd: '/tmp' }],
    ['cmdline[0]', { cmdline: ['two words'] }],
    ['cmdline[1]', { cmdline: ['ok', 'bad\nline'] }],
    ['cpus', { cpus: 0 }],
    ['cpus', { cpus: 1.5 }],
    ['memoryMiB', { memoryMiB: 8 }],
    ['consoleLog', { consoleLog: '/nonexistent-dir/console.log' }],
    ['runDir', { runDir: 'run' }],
  ])('rejects %s', (field, spec) => {
    expect(fieldOf(spec)).toBe(field);
  });

  it('rejects bad, duplicate or missing disks', () => {
    const disk = { id: 'd', path: '', readOnly: false, format: 'raw' as const };
    disk.path = path.join(dir, 'disk.img');
    expect(fieldOf({ disks: [{ ...disk, id: 'x'.repeat(21) }] })).toBe('disks[0].id');
    expect(fieldOf({ disks: [{ ...disk, id: 'a,b' }] })).toBe('disks[0].id');
    expect(fieldOf({ disks: [disk, disk] })).toBe('disks[1].id');
    expect(fieldOf({ disks: [{ ...disk, path: path.join(dir, 'nope.img') }] })).toBe('disks[0].path');
    expect(fieldOf({ disks: [{ ...disk, format: 'vmdk' as 'raw' }] })).toBe('disks[0].format');
    // qcow2 (snapshot forks) is a whole file: no byte range.
    expect(fieldOf({ disks: [{ ...disk, format: 'qcow2' }] })).toBeUndefined();
    expect(fieldOf({ disks: [{ ...disk, format: 'qcow2', range: { offset: 0, size: 4096 } }] })).toBe('disks[0].range');
    expect(fieldOf({ disks: [{ ...disk, range: { offset: -1, size: 1 } }] })).toBe('disks[0].range.offset');
    expect(fieldOf({ disks: [{ ...disk, range: { offset: 0, size: 0 } }] })).toBe('disks[0].range.size');
    expect(fieldOf({ disks: [{ ...disk, range: { offset: 0, size: fs.statSync(disk.path).size + 1 } }] })).toBe(
      'disks[0].range',
    );
  });

  it('rejects bad shares', () => {
    const share = { tag: 'work', hostPath: path.join(dir, 'share'), readOnly: false };
    expect(fieldOf({ shares: [{ ...share, tag: 'x'.repeat(32) }] })).toBe('shares[0].tag');
    expect(fieldOf({ shares: [share, share] })).toBe('shares[1].tag');
    expect(fieldOf({ shares: [{ ...share, hostPath: path.join(dir, 'disk.img') }] })).toBe('shares[0].hostPath');
  });

  it('requires the agent and network sockets to be listening already', () => {
    expect(fieldOf({ agent: { socketPath: path.join(dir, 'nobody.sock') } })).toBe('agent.socketPath');
    expect(fieldOf({ network: { socketPath: path.join(dir, 'disk.img'), mac: '52:54:00:12:34:56' } })).toBe(
      'network.socketPath',
    );
  });

  it('requires a unicast MAC', () => {
    const socketPath = path.join(dir, 'agent.sock');
    expect(fieldOf({ network: { socketPath, mac: '01:00:5e:00:00:01' } })).toBe('network.mac');
    expect(fieldOf({ network: { socketPath, mac: '52-54-00-12-34-56' } })).toBe('network.mac');
  });

  describe('against the features a driver declares', () => {
    const all: DriverFeatures = {
      agentTransport: 'virtio-serial',
      shares: '9p',
      shareOwnership: true,
      diskLookup: 'serial',
      diskRanges: true,
      nic: 'unix-stream',
      snapshot: true,
    };
    const disk = () => ({ id: 'd', path: path.join(dir, 'disk.img'), readOnly: true, format: 'raw' as const });
    const share = () => ({ tag: 'work', hostPath: path.join(dir, 'share'), readOnly: false });
    const nic = () => ({ socketPath: path.join(dir, 'agent.sock'), mac: '52:54:00:12:34:56' });

    it('accepts what is declared', () => {
      expect(
        fieldOf({ disks: [disk()], shares: [{ ...share(), hostOwnership: true }], network: nic() }, all),
      ).toBeUndefined();
    });

    // Specs are made when the test runs: `dir` exists only from beforeAll on.
    it.each<[string, Partial<DriverFeatures>, () => Partial<VmSpec>]>([
      ['shares', { shares: 'none' }, () => ({ shares: [share()] })],
      ['shares[0].hostOwnership', { shareOwnership: false }, () => ({ shares: [{ ...share(), hostOwnership: true }] })],
      ['disks[0].range', { diskRanges: false }, () => ({ disks: [{ ...disk(), range: { offset: 0, size: 0 } }] })],
      ['network', { nic: 'none' }, () => ({ network: nic() })],
      ['network', { nic: 'tap' }, () => ({ network: nic() })],
    ])('refuses %s when the driver does not declare it', (field, missing, spec) => {
      expect(fieldOf(spec(), { ...all, ...missing })).toBe(field);
    });

    it('checks features before anything else, and the same spec passes without them', () => {
      const spec = { shares: [share()] };
      expect(fieldOf(spec, { ...all, shares: 'none' })).toBe('shares');
      expect(fieldOf(spec)).toBeUndefined();
    });
  });
});
