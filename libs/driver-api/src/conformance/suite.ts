// The driver conformance suite (docs/architecture.md#driver-contract): boots real VMs through the driver it is given
// and checks what every driver must do. Call it at the top level of a jest test file:
//   runDriverConformance({ title: 'kvm', createDriver: () => createKvmDriver() });
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Driver, DriverFeatures, VmExit } from '../driver';
import { InvalidVmSpecError, SnapshotError, VmStartError } from '../errors';
import { readLogTail } from '../log-tail';
import type { VmSpec } from '../spec';
import { bootVm, isAlive, prepareVm, processesMentioning, vmDir, type BootedVm } from './booter';
import { prepareConformanceFixtures, type ConformanceFixtures } from './fixtures';
import { describeNeed, meets, needs, undeclaredRequests, type FeatureNeed } from './gate';

export interface ConformanceOptions {
  title?: string;
  createDriver(): Driver;
  /** Default: prepareConformanceFixtures() (fails, not skips, when the kernel is not built). */
  fixtures?(): ConformanceFixtures | Promise<ConformanceFixtures>;
  /** Per boot; generous because TCG on a busy 2-core host is slow. Default 60 s. */
  bootTimeoutMs?: number;
  /** Receives spawn -> ready times (informational: tests never assert on timing). */
  onTiming?(label: string, ms: number): void;
}

const GUEST_CPUS = 2;
const GUEST_MEMORY_MIB = 256;
const MAC = '52:54:00:c0:ff:ee';
const SHARES_9P = needs('shares', '9p');
const NIC_UNIX = needs('nic', 'unix-stream');

export function runDriverConformance(options: ConformanceOptions): void {
  const bootTimeoutMs = options.bootTimeoutMs ?? 60_000;
  const testTimeout = bootTimeoutMs + 30_000;

  describe(options.title ?? 'driver conformance', () => {
    let fx: ConformanceFixtures;
    let driver: Driver;
    let features: DriverFeatures | undefined;
    const booted: BootedVm[] = [];
    /** Tests that did not apply to this driver, named in one line at the end. */
    const notApplicable = new Set<string>();

    /**
     * A test that runs only where probe() declares `need`. Elsewhere it does nothing and is named
     * at the end (jest cannot skip a test once the run has started, and the probe is async).
     */
    const gated = (need: FeatureNeed, title: string, fn: () => Promise<void> | void, timeout?: number): void => {
      it(
        `${title} [${describeNeed(need)}]`,
        async () => {
          if (!meets(features, need)) {
            notApplicable.add(`${title} (${describeNeed(need)})`);
            return;
          }
          await fn();
        },
        timeout,
      );
    };

    const boot = async (name: string, spec?: Partial<VmSpec>): Promise<BootedVm> => {
      const vm = await bootVm({ driver, fixtures: fx, name, timeoutMs: bootTimeoutMs, spec });
      booted.push(vm);
      options.onTiming?.(`${name}: spawn -> ready`, vm.readyMs);
      return vm;
    };

    beforeAll(async () => {
      fx = await (options.fixtures ?? prepareConformanceFixtures)();
      driver = options.createDriver();
      features = (await driver.probe()).features;
    }, testTimeout);

    afterAll(async () => {
      if (notApplicable.size > 0)
        console.log(
          `${options.title ?? 'driver conformance'}: not declared, not tested: ${[...notApplicable].join('; ')}`,
        );
      for (const vm of booted) {
        await vm.handle.kill();
        await vm.agent.close();
      }
      if (fx) fs.rmSync(fx.workDir, { recursive: true, force: true });
    }, testTimeout);

    it('probe() reports the driver available, with an accelerator, its features and a guest CPU name', async () => {
      const probe = await driver.probe();
      expect(probe.available).toBe(true);
      expect(typeof probe.accelerator).toBe('string');
      expect(typeof probe.guestCpu).toBe('string');
      expect(probe.features).toEqual({
        agentTransport: expect.stringMatching(/^(virtio-serial|vsock)$/),
        shares: expect.stringMatching(/^(9p|virtio-fs|none)$/),
        shareOwnership: expect.any(Boolean),
        diskLookup: expect.stringMatching(/^(serial|order)$/),
        diskRanges: expect.any(Boolean),
        nic: expect.stringMatching(/^(unix-stream|tap|none)$/),
        snapshot: expect.any(Boolean),
      });
      expect(probe.features?.snapshot).toBe(driver.capabilities?.snapshot !== undefined);
      // The suite's stand-in agent reads a virtio-serial port (guest-init.ts).
      expect(probe.features?.agentTransport).toBe('virtio-serial');
    });

    it(
      'refuses a spec that asks for a feature it does not declare, before starting anything',
      async () => {
        const asks = features ? undeclaredRequests(features) : [];
        for (const { field } of asks) {
          const name = `undeclared-${field.replace(/\W/g, '-')}`;
          const dir = vmDir(fx, name);
          fs.mkdirSync(path.join(dir, 'share'), { recursive: true });
          fs.writeFileSync(path.join(dir, 'disk.img'), Buffer.alloc(8192));
          const request: Partial<VmSpec> =
            field === 'network'
              ? { network: { socketPath: '', mac: MAC } }
              : field === 'disks[0].range'
                ? {
                    disks: [
                      {
                        id: 'ranged',
                        path: path.join(dir, 'disk.img'),
                        readOnly: true,
                        format: 'raw',
                        range: { offset: 0, size: 4096 },
                      },
                    ],
                  }
                : {
                    shares: [
                      {
                        tag: 'share',
                        hostPath: path.join(dir, 'share'),
                        readOnly: true,
                        hostOwnership: field !== 'shares',
                      },
                    ],
                  };
          const { spec, agent } = await prepareVm({
            driver,
            fixtures: fx,
            name,
            timeoutMs: bootTimeoutMs,
            spec: request,
          });
          if (spec.network) spec.network.socketPath = spec.agent.socketPath;
          try {
            const err = await driver.start(spec).then(
              () => undefined,
              (e: unknown) => e,
            );
            expect(err).toBeInstanceOf(InvalidVmSpecError);
            expect((err as InvalidVmSpecError).field).toBe(field);
            expect(processesMentioning(spec.runDir)).toEqual([]);
          } finally {
            await agent.close();
          }
        }
        if (asks.length === 0)
          notApplicable.add('refusing undeclared features (this driver declares every one a VmSpec can ask for)');
      },
      testTimeout,
    );

    describe('a running VM', () => {
      let vm: BootedVm;
      let netPeer: Promise<net.Socket>;
      let netSocket: net.Socket | undefined;
      let netServer: net.Server;

      beforeAll(async () => {
        const dir = path.join(fx.workDir, 'main');
        fs.mkdirSync(path.join(dir, 'share-rw'), { recursive: true });
        fs.mkdirSync(path.join(dir, 'share-ro'), { recursive: true });
        fs.writeFileSync(path.join(dir, 'share-rw/hello.txt'), 'hello from the host\n');
        fs.writeFileSync(path.join(dir, 'share-ro/hello.txt'), 'read-only hello\n');
        const ro = Buffer.alloc(1024 * 1024);
        ro.write('smolvm-ro-disk');
        fs.writeFileSync(path.join(dir, 'ro.img'), ro);
        fs.writeFileSync(path.join(dir, 'rw.img'), Buffer.alloc(1024 * 1024));
        netServer = net.createServer();
        netPeer = new Promise((resolve) =>
          netServer.once('connection', (socket) => {
            netSocket = socket;
            resolve(socket);
          }),
        );
        await new Promise<void>((resolve) => netServer.listen(path.join(dir, 'net.sock'), resolve));
        // Only what the driver declares: the tests of the rest do not run.
        vm = await boot('main', {
          cpus: GUEST_CPUS,
          memoryMiB: GUEST_MEMORY_MIB,
          cmdline: ['smolvm.conformance=1'],
          disks: [
            { id: 'conf-ro', path: path.join(dir, 'ro.img'), readOnly: true, format: 'raw' },
            { id: 'conf-rw', path: path.join(dir, 'rw.img'), readOnly: false, format: 'raw' },
          ],
          ...(meets(features, SHARES_9P)
            ? {
                shares: [
                  { tag: 'rwshare', hostPath: path.join(dir, 'share-rw'), readOnly: false },
                  { tag: 'roshare', hostPath: path.join(dir, 'share-ro'), readOnly: true },
                ],
              }
            : {}),
          ...(meets(features, NIC_UNIX) ? { network: { socketPath: path.join(dir, 'net.sock'), mac: MAC } } : {}),
        });
      }, testTimeout);

      afterAll(async () => {
        netSocket?.destroy();
        netServer?.close();
      });

      it('boots, and the guest signals ready on the smolvm.agent port', () => {
        expect(isAlive(vm.handle.pid)).toBe(true);
      });

      it('runs commands: output and exit status come back', async () => {
        expect(await vm.agent.run('echo hello; echo world')).toEqual({ output: ['hello', 'world'], code: 0 });
        expect((await vm.agent.run('exit 7')).code).toBe(7);
      });

      it('gives the guest the requested cpus and memory', async () => {
        const cpus = await vm.agent.run('grep -c ^processor /proc/cpuinfo');
        expect(Number(cpus.output[0])).toBe(GUEST_CPUS);
        const mem = await vm.agent.run("awk '/^MemTotal:/ { print $2 }' /proc/meminfo");
        const kib = Number(mem.output[0]);
        expect(kib).toBeLessThanOrEqual(GUEST_MEMORY_MIB * 1024);
        expect(kib).toBeGreaterThan(GUEST_MEMORY_MIB * 1024 * 0.7);
      });

      it('appends the extra kernel arguments', async () => {
        const cmdline = await vm.agent.run('cat /proc/cmdline');
        expect(cmdline.output.join(' ').split(' ')).toContain('smolvm.conformance=1');
      });

      it('attaches disks in spec order, read-only when asked', async () => {
        const list = await vm.agent.run('for b in /sys/block/vd*; do echo "${b##*/} $(cat $b/ro)"; done');
        expect(list.output).toEqual(['vda 1', 'vdb 0']);
      });

      gated(needs('diskLookup', 'serial'), 'attaches disks with their id as serial, read-only when asked', async () => {
        const list = await vm.agent.run(
          'for b in /sys/block/vd*; do echo "$(cat $b/serial) ${b##*/} $(cat $b/ro)"; done',
        );
        const disks = new Map(
          list.output.map((l) => {
            const [id, dev, ro] = l.split(' ');
            return [id, { dev, ro }];
          }),
        );
        expect(disks.get('conf-ro')?.ro).toBe('1');
        expect(disks.get('conf-rw')?.ro).toBe('0');
        const roDev = `/dev/${disks.get('conf-ro')?.dev}`;
        const rwDev = `/dev/${disks.get('conf-rw')?.dev}`;
        expect((await vm.agent.run(`dd if=${roDev} bs=14 count=1 2>/dev/null; echo`)).output[0]).toBe('smolvm-ro-disk');
        expect((await vm.agent.run(`echo overwrite | dd of=${roDev} conv=fsync`)).code).not.toBe(0);
        expect((await vm.agent.run(`printf smolvm-rw-ok | dd of=${rwDev} conv=fsync`)).code).toBe(0);
        expect(fs.readFileSync(path.join(vm.dir, 'rw.img')).subarray(0, 12).toString()).toBe('smolvm-rw-ok');
      });

      gated(SHARES_9P, 'shares host directories over 9p, read-only when asked', async () => {
        const mount = (tag: string, at: string) =>
          `mkdir -p ${at} && mount -t 9p -o trans=virtio,version=9p2000.L ${tag} ${at}`;
        expect((await vm.agent.run(`${mount('rwshare', '/mnt/rw')} && cat /mnt/rw/hello.txt`)).output).toEqual([
          'hello from the host',
        ]);
        expect((await vm.agent.run('echo from the guest > /mnt/rw/guest.txt')).code).toBe(0);
        expect(fs.readFileSync(path.join(fx.workDir, 'main/share-rw/guest.txt'), 'utf8')).toBe('from the guest\n');
        expect((await vm.agent.run(`${mount('roshare', '/mnt/ro')} && cat /mnt/ro/hello.txt`)).output).toEqual([
          'read-only hello',
        ]);
        expect((await vm.agent.run('echo no > /mnt/ro/denied.txt')).code).not.toBe(0);
        expect(fs.existsSync(path.join(fx.workDir, 'main/share-ro/denied.txt'))).toBe(false);
      });

      gated(NIC_UNIX, 'wires the network endpoint: a NIC with the MAC, connected to the socket', async () => {
        const addresses = await vm.agent.run('cat /sys/class/net/*/address');
        expect(addresses.output).toContain(MAC);
        await expect(
          Promise.race([netPeer.then(() => 'connected'), sleep(10_000).then(() => 'no connection')]),
        ).resolves.toBe('connected');
      });

      it('writes the guest console to the console log', () => {
        expect(fs.readFileSync(vm.spec.consoleLog, 'utf8')).toContain('conformance-init: started');
      });

      it(
        'stop() ends it, then no process or file of the driver is left',
        async () => {
          const exit = await vm.handle.stop();
          expect(exit.reason).toBe('stopped');
          await expectNothingLeft(vm, exit);
        },
        testTimeout,
      );
    });

    describe('ending VMs (two run at once)', () => {
      let first: BootedVm;
      let second: BootedVm;

      beforeAll(async () => {
        [first, second] = await Promise.all([boot('end-guest'), boot('end-kill')]);
      }, testTimeout);

      it(
        'a guest that reboots ends the VM; stop() lets it finish within its timeout',
        async () => {
          first.agent.send('reboot -f');
          const exit = await first.handle.stop({ timeoutMs: bootTimeoutMs });
          expect(exit.reason).toBe('guest');
          await expectNothingLeft(first, exit);
        },
        testTimeout,
      );

      it(
        'kill() ends the VM at once; ending it again returns the same exit',
        async () => {
          const exit = await second.handle.kill();
          expect(exit.reason).toBe('killed');
          expect(await second.handle.stop()).toEqual(exit);
          await expectNothingLeft(second, exit);
        },
        testTimeout,
      );
    });

    it(
      'a guest kernel panic ends the VM, and the console log says why',
      async () => {
        const { spec, agent, dir } = await prepareVm({
          driver,
          fixtures: fx,
          name: 'panic',
          timeoutMs: bootTimeoutMs,
          spec: { initrd: fx.panicInitrd },
        });
        try {
          const handle = await driver.start(spec);
          const exit = await Promise.race([handle.wait(), sleep(bootTimeoutMs).then(() => handle.kill())]);
          expect(exit.reason).toBe('guest');
          expect(readLogTail(spec.consoleLog, 60).join('\n')).toMatch(/Kernel panic/);
          await expectNothingLeft({ spec, handle, dir }, exit);
        } finally {
          await agent.close();
        }
      },
      testTimeout,
    );

    it(
      'start() rejects an unbootable kernel with VmStartError and leaves nothing behind',
      async () => {
        const bogus = path.join(fx.workDir, 'not-a-kernel');
        fs.writeFileSync(bogus, 'this is not a kernel\n');
        const { spec, agent } = await prepareVm({
          driver,
          fixtures: fx,
          name: 'bogus',
          timeoutMs: bootTimeoutMs,
          spec: { kernel: bogus },
        });
        try {
          const err = await driver.start(spec).then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(err).toBeInstanceOf(VmStartError);
          expect((err as VmStartError).remedy).toBeTruthy();
          expect(processesMentioning(spec.runDir)).toEqual([]);
          expect(listFiles(spec.runDir)).toEqual([]);
        } finally {
          await agent.close();
        }
      },
      testTimeout,
    );

    // Only for drivers with the optional snapshot capability.
    gated(
      needs('snapshot', true),
      'snapshots: a saved VM restores twice at once, each copy-on-write on its own channel; a wrong shape is refused',
      async () => {
        const snapshot = driver.capabilities?.snapshot;
        if (!snapshot) throw new Error('probe() declares snapshot, but the driver has no snapshot capability');
        expect(typeof (await snapshot.fingerprint())).toBe('string');
        const stateDir = vmDir(fx, 'snap-state');
        const reconnect = { cmdline: ['smolvm.conformance.reconnect'] };
        const source = await prepareVm({
          driver,
          fixtures: fx,
          name: 'snap-source',
          timeoutMs: bootTimeoutMs,
          spec: reconnect,
        });
        const saved = await snapshot.startSaveable(source.spec, stateDir);
        try {
          await source.agent.ready(bootTimeoutMs, saved.wait());
          expect((await source.agent.run('echo saved > /tmp/marker')).code).toBe(0);
        } finally {
          await source.agent.close(); // the contract: the host side goes before the save
        }
        await snapshot.save(saved, stateDir);
        await expectNothingLeft({ spec: source.spec, handle: saved, dir: source.dir }, await saved.kill());

        const copies = await Promise.all(
          [0, 1].map(async (i) => {
            const vm = await prepareVm({
              driver,
              fixtures: fx,
              name: `snap-copy${i}`,
              timeoutMs: bootTimeoutMs,
              spec: reconnect,
            });
            const handle = await snapshot.restore(vm.spec, stateDir);
            booted.push({ ...vm, handle, readyMs: 0 });
            await vm.agent.ready(bootTimeoutMs, handle.wait());
            return { ...vm, handle };
          }),
        );
        for (const [i, copy] of copies.entries()) {
          expect((await copy.agent.run(`cat /tmp/marker; echo copy${i} > /tmp/marker`)).output).toEqual(['saved']);
        }
        for (const [i, copy] of copies.entries())
          expect((await copy.agent.run('cat /tmp/marker')).output).toEqual([`copy${i}`]);
        for (const copy of copies) await expectNothingLeft(copy, await copy.handle.stop());

        const wrong = await prepareVm({
          driver,
          fixtures: fx,
          name: 'snap-wrong',
          timeoutMs: bootTimeoutMs,
          spec: { ...reconnect, memoryMiB: 192 },
        });
        try {
          await expect(snapshot.restore(wrong.spec, stateDir)).rejects.toBeInstanceOf(SnapshotError);
          expect(processesMentioning(wrong.spec.runDir)).toEqual([]);
        } finally {
          await wrong.agent.close();
        }
      },
      testTimeout * 3,
    );

    it('start() rejects an invalid spec before starting anything', async () => {
      const { spec, agent } = await prepareVm({
        driver,
        fixtures: fx,
        name: 'invalid',
        timeoutMs: bootTimeoutMs,
        spec: { cpus: 0 },
      });
      try {
        await expect(driver.start(spec)).rejects.toBeInstanceOf(InvalidVmSpecError);
        expect(processesMentioning(spec.runDir)).toEqual([]);
      } finally {
        await agent.close();
      }
    });
  });
}

async function expectNothingLeft(vm: Pick<BootedVm, 'spec' | 'handle' | 'dir'>, exit: VmExit): Promise<void> {
  expect(await vm.handle.wait()).toEqual(exit);
  expect(isAlive(vm.handle.pid)).toBe(false);
  expect(processesMentioning(vm.spec.runDir)).toEqual([]);
  expect(listFiles(vm.spec.runDir)).toEqual([]);
}

function listFiles(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
