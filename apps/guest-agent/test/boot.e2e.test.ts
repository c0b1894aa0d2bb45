// End to end: real VMs (guest kernel + agent image as root disk + virtio-serial channel) through
// driver-kvm. Prints boot figures; asserts behaviour only.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { probeKvmDeviceSync } from '@smolvm/driver-kvm';
import { buildSnapshotInGuest, snapshotBlobPath, type AgentImage } from '@smolvm/agent-image';
import { collect, waitFor } from './harness';
import { agentImage, bootVm, buildAgentBundle, guestKernel, type BootedVm } from './vm';
import { buildTestImage } from './test-image';

jest.setTimeout(600_000);

let work: string;
let kernel: string;
let image: AgentImage;
let bundle: string;

beforeAll(async () => {
  kernel = guestKernel();
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-boot-e2e-'));
  bundle = buildAgentBundle(path.join(work, 'bundle'));
  image = await agentImage(path.join(work, 'cache'), bundle);
});

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

async function firstExec(vm: BootedVm): Promise<{ out: string; exit: unknown; ms: number }> {
  const s = await vm.client.exec({ argv: ['echo', 'hi'] });
  const out = (await collect(s.stdout)).toString();
  const exit = await s.exit;
  return { out, exit, ms: performance.now() - vm.spawnedAt };
}

async function shutdown(vm: BootedVm): Promise<void> {
  await vm.client.shutdown();
  const exit = await vm.exited;
  expect(exit).toMatchObject({ reason: 'guest' });
}

function report(accel: string, vm: BootedVm, firstMs: number): void {
  // Printed, not asserted: timings belong to benchmarks (docs/CONTRIBUTING.md).
  console.log(
    `boot figures (${accel}, ${os.cpus().length} host cpus, load ${os.loadavg()[0].toFixed(1)}): spawn->ready ${Math.round(vm.readyMs)} ms, spawn->first exec result ${Math.round(firstMs)} ms`,
  );
}

describe('bare VM on the agent image', () => {
  it('TCG: hello, exec, a writable root, clean shutdown', async () => {
    const vm = await bootVm({ accel: 'tcg', kernel, image });
    try {
      const info = await vm.client.waitReady();
      expect(info).toMatchObject({ agent: 'smolvm-guest-agent', node: process.version, port: 'pipe' });
      const first = await firstExec(vm);
      expect(first.out).toBe('hi\n');
      expect(first.exit).toEqual({ code: 0, signal: null });
      report('tcg', vm, first.ms);

      const rw = await vm.client.exec({
        argv: ['sh', '-c', 'echo written > /root/f && cat /root/f && touch /tmp/t && ls /opt/smolvm/agent.js'],
      });
      expect((await collect(rw.stdout)).toString()).toBe('written\n/opt/smolvm/agent.js\n');
      await expect(rw.exit).resolves.toEqual({ code: 0, signal: null });
      // Orphans are reaped by PID 1: none linger as zombies.
      const orphans = await vm.client.exec({
        argv: ['sh', '-c', '(sleep 0.2 &) ; sleep 1; ps -o stat | grep -c Z || true'],
      });
      expect((await collect(orphans.stdout)).toString().trim()).toBe('0');
      await shutdown(vm);
    } finally {
      await vm.dispose();
    }
  });

  it('KVM when this host can run the guest on it (figures printed)', async () => {
    const kvm = probeKvmDeviceSync();
    if (!kvm.usable) {
      console.log(`KVM: not usable here (${kvm.reason}); only TCG figures`);
      return;
    }
    let vm: BootedVm;
    try {
      vm = await bootVm({ accel: 'kvm', kernel, image, readyTimeoutMs: 60_000 });
    } catch (err) {
      // /dev/kvm answering ioctls is not the same as running a guest: nested hypervisors such as
      // PVM reject instructions an ordinary kernel executes. That is this host, not our code.
      const message = String(err);
      if (/internal-error|KVM internal error|emulation failure/i.test(message)) {
        console.log(
          `KVM: /dev/kvm opens, but this host's KVM cannot run the guest kernel (QEMU internal-error); only TCG figures.\n${message.slice(0, 600)}`,
        );
        return;
      }
      throw err;
    }
    try {
      const first = await firstExec(vm);
      expect(first.out).toBe('hi\n');
      report('kvm', vm, first.ms);
      await shutdown(vm);
    } finally {
      await vm.dispose();
    }
  });
});

describe('startup snapshot built in a guest', () => {
  it('TCG: a blob built in a bare VM loads in the next VM (figures printed)', async () => {
    const cacheDir = path.join(work, 'cache');
    const builder = await bootVm({ accel: 'tcg', kernel, image });
    let blob: Buffer;
    try {
      blob = await buildSnapshotInGuest(builder.client);
      await shutdown(builder);
    } finally {
      await builder.dispose();
    }
    const blobPath = snapshotBlobPath(cacheDir, image.key, 'tcg-max');
    fs.writeFileSync(blobPath, blob);
    const snapImage = await agentImage(cacheDir, bundle, { snapshot: { blob: blobPath } });
    expect(snapImage.key).not.toBe(image.key);
    const vm = await bootVm({ accel: 'tcg', kernel, image: snapImage });
    try {
      expect(await vm.client.waitReady()).toMatchObject({ snapshot: true });
      const first = await firstExec(vm);
      expect(first.out).toBe('hi\n');
      report('tcg, startup snapshot', vm, first.ms);
      await shutdown(vm);
    } finally {
      await vm.dispose();
    }
  });
});

describe('image VM: erofs image disk as overlay root', () => {
  it('runs commands in the image root with volumes, user, hostname, clock, pty', async () => {
    const imageDisk = path.join(work, 'image.erofs');
    await buildTestImage(path.join(work, 'image-tree'), imageDisk);
    const roShare = path.join(work, 'ro-share');
    const rwShare = path.join(work, 'rw-share');
    fs.mkdirSync(roShare);
    fs.mkdirSync(rwShare);
    fs.writeFileSync(path.join(roShare, 'input.txt'), 'from the host\n');
    const vm = await bootVm({
      accel: 'tcg',
      kernel,
      image,
      extraDisks: [{ id: 'smolvm-image', path: imageDisk, readOnly: true, format: 'raw' }],
      shares: [
        { tag: 'vol0', hostPath: roShare, readOnly: true },
        { tag: 'vol1', hostPath: rwShare, readOnly: false },
      ],
    });
    try {
      await vm.client.setTime(Date.UTC(2031, 0, 2, 3, 4, 5));
      await vm.client.setup({
        hostname: 'e2e-box',
        image: { device: { serial: 'smolvm-image' } },
        volumes: [
          { tag: 'vol0', path: '/in', readOnly: true },
          { tag: 'vol1', path: '/out' },
        ],
      });
      const run = async (argv: string[], opts: { user?: string; cwd?: string } = {}) => {
        const s = await vm.client.exec({ argv, ...opts });
        const [out, err] = await Promise.all([collect(s.stdout), collect(s.stderr)]);
        return { out: out.toString(), err: err.toString(), exit: await s.exit };
      };
      expect((await run(['cat', '/etc/os-release'])).out).toBe('ID=smolvm-test\n');
      expect((await run(['sh', '-c', 'test -e /opt/smolvm && echo agent-visible || echo image-only'])).out).toBe(
        'image-only\n',
      );
      expect((await run(['sh', '-c', 'echo changed > /etc/motd && cat /etc/motd'])).out).toBe('changed\n');
      expect((await run(['hostname'])).out).toBe('e2e-box\n');
      expect((await run(['sh', '-c', 'id -u; id -g; echo $HOME'], { user: 'app' })).out).toBe(
        '1000\n1000\n/home/app\n',
      );
      expect((await run(['pwd'], { cwd: '/workspace' })).out).toBe('/workspace\n');
      expect((await run(['date', '-u', '+%Y'])).out).toBe('2031\n');
      expect((await run(['cat', '/in/input.txt'])).out).toBe('from the host\n');
      expect((await run(['sh', '-c', 'echo x > /in/nope'])).exit).toEqual({ code: 1, signal: null });
      // cache=loose: the guest writes back lazily; sync (as the shutdown does) makes it visible.
      await run(['sh', '-c', 'echo from the guest > /out/result.txt && sync']);
      expect(fs.readFileSync(path.join(rwShare, 'result.txt'), 'utf8')).toBe('from the guest\n');
      expect(
        (await run(['sh', '-c', 'grep -c " / overlay" /proc/mounts; grep -c " /dev/pts devpts" /proc/mounts'])).out,
      ).toBe('1\n1\n');
      expect((await run(['sh', '-c', 'echo out; echo err >&2; exit 7'])).exit).toEqual({ code: 7, signal: null });
      const big = await run(['sh', '-c', 'head -c 3000000 /dev/zero; head -c 2000000 /dev/zero >&2']);
      expect([big.out.length, big.err.length]).toEqual([3000000, 2000000]);

      const tty = await vm.client.exec({
        argv: ['sh', '-c', 'stty size; echo ready; exec sleep 60'],
        stdin: true,
        tty: { rows: 40, cols: 100 },
      });
      const seen = await waitFor(tty.stdout, 'ready');
      expect(seen).toContain('40 100');
      tty.stdin.write('\x03');
      await expect(tty.exit).resolves.toEqual({ code: null, signal: 'SIGINT' });
      await shutdown(vm);
    } finally {
      await vm.dispose();
    }
  });
});
