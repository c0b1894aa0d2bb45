import net from 'node:net';
import path from 'node:path';
import fs from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { QmpClient, QmpConnectionError, QmpError, type QmpEvent } from '../src';
import { startPausedQemu, tempDir, waitUntil } from './helpers';

describe('QmpClient against a real (paused) QEMU', () => {
  let dir: string;
  let qemu: ChildProcess;
  let qmp: QmpClient;

  beforeAll(async () => {
    dir = tempDir();
    const socket = path.join(dir, 'qmp.sock');
    qemu = startPausedQemu(socket);
    await waitUntil(() => fs.existsSync(socket), 10_000);
    qmp = await QmpClient.connect(socket);
  }, 20_000);

  afterAll(() => {
    qmp?.close();
    qemu?.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('negotiates and reports the QEMU version from the greeting', () => {
    expect(qmp.version?.qemu.major).toBeGreaterThanOrEqual(7);
  });

  it('executes commands and returns their result', async () => {
    expect(await qmp.execute('query-status')).toMatchObject({ running: false, status: 'prelaunch' });
    expect(await qmp.execute('query-name')).toEqual({});
  });

  it('answers concurrent commands to the right caller', async () => {
    const [status, kvm, name] = await Promise.all([
      qmp.execute('query-status'),
      qmp.execute('query-kvm'),
      qmp.execute('query-name'),
    ]);
    expect(status).toHaveProperty('status');
    expect(kvm).toHaveProperty('enabled', false);
    expect(name).toEqual({});
  });

  it('turns a QMP error into QmpError with its class', async () => {
    const err = await qmp.execute('no-such-command').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect((err as QmpError).errorClass).toBe('CommandNotFound');
    expect((err as QmpError).message).toContain('no-such-command');
  });

  it('delivers events to subscribers', async () => {
    const events: QmpEvent[] = [];
    const off = qmp.onEvent((e) => events.push(e));
    await qmp.execute('cont');
    await waitUntil(() => events.some((e) => e.event === 'RESUME'), 5_000);
    off();
    expect(events.map((e) => e.event)).toContain('RESUME');
  });

  it('quit: SHUTDOWN with reason host-qmp-quit, then the connection closes and commands fail', async () => {
    const events: QmpEvent[] = [];
    qmp.onEvent((e) => events.push(e));
    const exited = new Promise((resolve) => qemu.once('exit', resolve));
    await qmp.execute('quit');
    await qmp.closed;
    await exited;
    expect(events.find((e) => e.event === 'SHUTDOWN')?.data).toMatchObject({ guest: false, reason: 'host-qmp-quit' });
    await expect(qmp.execute('query-status')).rejects.toBeInstanceOf(QmpConnectionError);
  });
});

describe('QmpClient.negotiate on a socket QEMU connected to (QEMU as client)', () => {
  it('works the same as a client connection', async () => {
    const dir = tempDir();
    const socket = path.join(dir, 'qmp.sock');
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const qemu = spawn(
      'qemu-system-x86_64',
      [
        '-M',
        'microvm,acpi=off',
        '-accel',
        'tcg',
        '-nodefaults',
        '-display',
        'none',
        '-S',
        '-chardev',
        `socket,id=qmp,path=${socket}`,
        '-mon',
        'chardev=qmp,mode=control',
      ],
      { stdio: 'ignore' },
    );
    try {
      const qmp = await QmpClient.negotiate(await accepted);
      expect(await qmp.execute('query-status')).toMatchObject({ status: 'prelaunch' });
      qmp.close();
    } finally {
      qemu.kill('SIGKILL');
      server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 20_000);

  it('times out when nothing greets it', async () => {
    const [a, b] = await socketPair();
    await expect(QmpClient.negotiate(a, 200)).rejects.toThrow(/greeting/);
    b.destroy();
  });
});

async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const dir = tempDir();
  const socket = path.join(dir, 's.sock');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const client = net.createConnection(socket);
  const other = await accepted;
  server.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return [client, other];
}
