// A network namespace that plays the guest: a TAP device (our end stays in this process) moved
// into it, with the guest's address, a default route via the gateway and a resolv.conf naming the
// gateway's DNS server. Host-side test addresses live on a veth created here too.
// Everything is named after this process's pid and removed by cleanup(), even after failures.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { DEFAULT_NETWORK } from '../../src/gateway';
import { TapDevice } from './tap';

export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function tryRun(cmd: string, args: string[]): void {
  try {
    sh(cmd, args);
  } catch {
    // already gone
  }
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export class TestNetwork {
  readonly ns: string;
  readonly tap: TapDevice;
  readonly dummy: string;
  /** Host-side test addresses (on the host end of a veth): 198.18.N.1 .. 198.18.N.4. */
  readonly hostAddresses: string[];
  private readonly netnsEtc: string;

  private constructor(ns: string, tap: TapDevice, dummy: string, hostAddresses: string[]) {
    this.ns = ns;
    this.tap = tap;
    this.dummy = dummy;
    this.hostAddresses = hostAddresses;
    this.netnsEtc = `/etc/netns/${ns}`;
  }

  static available(): boolean {
    return process.getuid?.() === 0 && fs.existsSync('/dev/net/tun');
  }

  static create(tag: string): TestNetwork {
    const id = `${process.pid % 100000}${tag}`;
    const ns = `smolvm-test-${id}`;
    const tapName = `smt${id}`.slice(0, 15);
    const dummy = `smv${id}`.slice(0, 14);
    const n = (process.pid % 200) + 20;
    const hostAddresses = [1, 2, 3, 4].map((h) => `198.18.${n}.${h}`);
    const tap = TapDevice.open(tapName);
    const net = new TestNetwork(ns, tap, dummy, hostAddresses);
    try {
      sh('ip', ['netns', 'add', ns]);
      sh('ip', ['link', 'set', tapName, 'netns', ns]);
      const inNs = (...args: string[]): string => sh('ip', ['netns', 'exec', ns, ...args]);
      inNs('ip', 'link', 'set', 'lo', 'up');
      inNs('ip', 'link', 'set', tapName, 'address', DEFAULT_NETWORK.guestMac);
      inNs('ip', 'link', 'set', tapName, 'name', 'eth0');
      inNs('ip', 'addr', 'add', `${DEFAULT_NETWORK.guest}/${DEFAULT_NETWORK.prefix}`, 'dev', 'eth0');
      inNs('ip', 'link', 'set', 'eth0', 'up');
      inNs('ip', 'route', 'add', 'default', 'via', DEFAULT_NETWORK.gateway);
      fs.mkdirSync(net.netnsEtc, { recursive: true });
      fs.writeFileSync(
        `${net.netnsEtc}/resolv.conf`,
        `nameserver ${DEFAULT_NETWORK.gateway}\noptions timeout:2 attempts:1\n`,
      );
      fs.writeFileSync(`${net.netnsEtc}/hosts`, '127.0.0.1 localhost\n');
      // The host end of a veth pair carries the test addresses; its peer sits in a namespace of
      // its own (no dummy driver on every kernel).
      sh('ip', ['netns', 'add', `${ns}-peer`]);
      sh('ip', ['link', 'add', dummy, 'type', 'veth', 'peer', 'name', `${dummy}p`, 'netns', `${ns}-peer`]);
      for (const a of hostAddresses) sh('ip', ['addr', 'add', `${a}/32`, 'dev', dummy]);
      sh('ip', ['link', 'set', dummy, 'up']);
      sh('ip', ['netns', 'exec', `${ns}-peer`, 'ip', 'link', 'set', `${dummy}p`, 'up']);
    } catch (err) {
      net.cleanup();
      throw err;
    }
    return net;
  }

  /** Runs a command inside the guest namespace. */
  exec(cmd: string, args: string[], options: { timeoutMs?: number; input?: string } = {}): Promise<ExecResult> {
    return new Promise((resolve) => {
      const child = spawn('ip', ['netns', 'exec', this.ns, cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
      // A command that exits without reading its input closes the pipe (EPIPE): its exit code says what happened.
      child.stdin.on('error', () => undefined);
      child.stdin.end(options.input ?? '');
    });
  }

  /** Runs a Node script (source text) inside the guest namespace; args via process.argv[1...]. */
  node(script: string, args: string[] = [], options: { timeoutMs?: number } = {}): Promise<ExecResult> {
    return this.exec(process.execPath, ['-e', script, '--', ...args], options);
  }

  /** A long-running Node script in the guest; resolves once it printed a line containing `ready`. */
  async startNode(script: string, args: string[]): Promise<ChildProcess> {
    const child = spawn('ip', ['netns', 'exec', this.ns, process.execPath, '-e', script, '--', ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`guest program exited ${code} before it was ready`)));
    });
    return child;
  }

  cleanup(): void {
    this.tap.close();
    tryRun('ip', ['netns', 'delete', this.ns]);
    tryRun('ip', ['link', 'delete', this.dummy]);
    tryRun('ip', ['netns', 'delete', `${this.ns}-peer`]);
    fs.rmSync(this.netnsEtc, { recursive: true, force: true });
  }
}
