import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { MachineStore } from '@smolvm/machine-store';
import { currentProcessIdentity } from '@smolvm/common';
import { AgentServer } from '@smolvm/agent-protocol';
import { smolvm, smolvmAsync } from './helpers';

const servers: net.Server[] = [];
afterAll(() => servers.forEach((s) => s.close()));

/** Answers pings like a machine's supervisor does (a unix socket speaking the agent protocol). */
async function fakeSupervisor(): Promise<string> {
  const socket = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-sup-')), 'control.sock');
  const server = net.createServer((conn) => {
    new AgentServer(conn, { exec: () => Promise.reject(new Error('not here')) }).announce(true);
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  servers.push(server);
  return socket;
}

describe('machine ls / status (read the store)', () => {
  let home: string;
  let env: NodeJS.ProcessEnv;
  let store: MachineStore;

  beforeEach(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-cli-'));
    env = { SMOLVM_HOME: home };
    store = new MachineStore(path.join(home, 'data', 'machines'));
  });
  afterEach(() => fs.rmSync(home, { recursive: true, force: true }));

  it('ls on an empty store prints nothing on stdout and a hint on stderr', () => {
    const r = smolvm(['machine', 'ls'], env);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('smolvm machine create');
    expect(JSON.parse(smolvm(['machine', 'ls', '--json'], env).stdout)).toEqual([]);
  });

  it('ls lists machines with their state, as a table and as JSON', async () => {
    await store.create({ name: 'web', image: 'docker.io/library/alpine:latest', cpus: 2, memoryMiB: 1024 });
    await store.create({ name: 'bare' });
    const me = currentProcessIdentity();
    const socket = await fakeSupervisor();
    await store.update('web', (r) => ({
      ...r,
      runtime: { pid: me.pid, startTime: me.startTime, socket, startedAt: new Date().toISOString() },
    }));

    const table = await smolvmAsync(['machine', 'ls'], env);
    expect(table.status).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+STATE\s+IMAGE\s+CPUS\s+MEMORY\s+NET\s+CREATED$/);
    expect(lines[1]).toMatch(/^bare\s+created\s+\(bare\)\s+4\s+8192 MiB\s+off\s+\d{4}-/);
    expect(lines[2]).toMatch(/^web\s+running\s+docker\.io\/library\/alpine:latest\s+2\s+1024 MiB\s+off\s+/);

    const json = JSON.parse((await smolvmAsync(['machine', 'ls', '--json'], env)).stdout);
    expect(json).toEqual([
      {
        name: 'bare',
        state: 'created',
        image: null,
        cpus: 4,
        memoryMiB: 8192,
        storageGiB: 20,
        overlayGiB: 2,
        net: false,
        ephemeral: false,
        createdAt: expect.any(String),
      },
      {
        name: 'web',
        state: 'running',
        image: 'docker.io/library/alpine:latest',
        cpus: 2,
        memoryMiB: 1024,
        storageGiB: 20,
        overlayGiB: 2,
        net: false,
        ephemeral: false,
        createdAt: expect.any(String),
      },
    ]);
  });

  it('ls warns about a damaged entry but still lists the rest', async () => {
    await store.create({ name: 'ok' });
    fs.mkdirSync(path.join(home, 'data', 'machines', 'broken'));
    fs.writeFileSync(path.join(home, 'data', 'machines', 'broken', 'machine.json'), '{not json');
    const r = smolvm(['machine', 'ls', '--json'], env);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).map((m: { name: string }) => m.name)).toEqual(['ok']);
    expect(r.stderr).toMatch(/^warning: skipped .*broken/m);
  });

  it('status reports created, stopped (dead supervisor) and running', async () => {
    await store.create({ name: 'default' });
    expect(smolvm(['machine', 'status'], env).stdout).toMatch(/^state:\s+created$/m);

    await store.update('default', (r) => ({
      ...r,
      runtime: { pid: 2 ** 22 + 7, startTime: 1, socket: '/x', startedAt: new Date().toISOString() },
    }));
    const stopped = JSON.parse(smolvm(['machine', 'status', '--json'], env).stdout);
    expect(stopped.state).toBe('stopped');

    // A live supervisor whose socket does not answer: the truth is "unreachable", not "running".
    const me = currentProcessIdentity();
    await store.update('default', (r) => ({
      ...r,
      runtime: {
        pid: me.pid,
        startTime: me.startTime,
        socket: path.join(home, 'nobody.sock'),
        startedAt: new Date().toISOString(),
      },
    }));
    expect(JSON.parse(smolvm(['machine', 'status', '-n', 'default', '--json'], env).stdout).state).toBe('unreachable');

    const socket = await fakeSupervisor();
    await store.update('default', (r) => ({
      ...r,
      runtime: { pid: me.pid, startTime: me.startTime, socket, startedAt: new Date().toISOString() },
    }));
    const running = JSON.parse((await smolvmAsync(['machine', 'status', '-n', 'default', '--json'], env)).stdout);
    expect(running).toMatchObject({ state: 'running', pingMs: expect.any(Number), supervisorPid: me.pid });
  });

  it('status of a missing machine is one error line, exit 1', () => {
    const r = smolvm(['machine', 'status', '--name', 'nope'], env);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(r.stderr).toMatch(/^error: .*nope.*smolvm machine ls/);
  });

  it('an invalid name is a usage error, exit 2, and touches nothing', () => {
    const r = smolvm(['machine', 'status', '--name', '../etc'], env);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^error: .*name/);
    expect(fs.existsSync(path.join(home, 'data'))).toBe(false);
  });
});
