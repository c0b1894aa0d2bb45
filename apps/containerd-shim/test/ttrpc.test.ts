// The ttrpc server and client over a real unix socket: dispatch, errors as statuses, concurrent
// calls, and a peer that breaks the framing.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { EventPublisher } from '../src/events';
import { decodeMessage } from '../src/proto';
import { Code, TtrpcClient, TtrpcError, TtrpcServer, TYPE_RESPONSE, encodeFrame } from '../src/ttrpc';

let dir: string;
beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ttrpc-'))));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

async function listen(server: TtrpcServer): Promise<string> {
  const sock = path.join(dir, 's.sock');
  await new Promise<void>((resolve) => server.server.listen(sock, resolve));
  return sock;
}

it('dispatches to the method, answers errors with their status code, runs calls concurrently', async () => {
  let release: () => void = () => undefined;
  const server = new TtrpcServer([
    {
      name: 'containerd.task.v2.Task',
      methods: {
        State: async (r) => ({ id: r.id, status: 2, pid: 42 }),
        Wait: () => new Promise((resolve) => (release = () => resolve({ exitStatus: 3 }))),
        Kill: async () => {
          throw new TtrpcError(Code.NotFound, 'process already finished');
        },
        Pids: async () => {
          throw new Error('boom');
        },
      },
    },
  ]);
  const errors: string[] = [];
  server.onError = (e) => errors.push(e.message);
  const client = await TtrpcClient.connect(await listen(server));
  try {
    const wait = client.call('containerd.task.v2.Task', 'Wait', { id: 't' });
    // Wait is pending: a State on the same connection is still answered.
    expect(await client.call('containerd.task.v2.Task', 'State', { id: 't' })).toMatchObject({
      id: 't',
      status: 2,
      pid: 42,
    });
    release();
    expect(await wait).toMatchObject({ exitStatus: 3 });
    await expect(client.call('containerd.task.v2.Task', 'Kill', { id: 't', signal: 9 })).rejects.toMatchObject({
      code: Code.NotFound,
      message: 'process already finished',
    });
    await expect(client.call('containerd.task.v2.Task', 'Pids', { id: 't' })).rejects.toMatchObject({
      code: Code.Internal,
      message: 'boom',
    });
    await expect(client.call('containerd.task.v2.Task', 'Pause', { id: 't' })).rejects.toMatchObject({
      code: Code.Unimplemented,
    });
    expect(errors).toEqual(['boom']);
  } finally {
    client.close();
    server.close();
  }
});

it('closes a connection that sends a response frame or an oversized header, and keeps serving others', async () => {
  const server = new TtrpcServer([{ name: 'containerd.task.v2.Task', methods: { State: async () => ({ id: 'x' }) } }]);
  const sock = await listen(server);
  for (const bad of [
    encodeFrame({ streamId: 1, type: TYPE_RESPONSE, flags: 0, payload: Buffer.alloc(0) }),
    Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 1, 0]),
  ]) {
    const raw = net.connect(sock);
    raw.write(bad);
    await new Promise((resolve) => raw.on('close', resolve));
  }
  const client = await TtrpcClient.connect(sock);
  expect(await client.call('containerd.task.v2.Task', 'State', { id: 'x' })).toMatchObject({ id: 'x' });
  client.close();
  server.close();
});

it('publishes events as containerd Forward calls: envelope with namespace, topic and the event as an Any', async () => {
  const received: Array<Record<string, unknown>> = [];
  const server = new TtrpcServer([
    {
      name: 'containerd.services.events.ttrpc.v1.Events',
      methods: {
        Forward: async (r) => {
          received.push(r);
          return {};
        },
      },
    },
  ]);
  const sock = await listen(server);
  const publisher = new EventPublisher(sock, 'k8s.io', () => undefined);
  await publisher.publish('/tasks/start', 'containerd.events.TaskStart', { containerId: 'c1', pid: 7 });
  await publisher.publish('/tasks/exit', 'containerd.events.TaskExit', {
    containerId: 'c1',
    id: 'c1',
    pid: 7,
    exitStatus: 143,
    exitedAt: { seconds: 1, nanos: 0 },
  });
  publisher.close();
  server.close();
  const envelopes = received.map(
    (r) => r.envelope as { namespace: string; topic: string; event: { type_url: string; value: Buffer } },
  );
  expect(envelopes.map((e) => [e.namespace, e.topic, e.event.type_url])).toEqual([
    ['k8s.io', '/tasks/start', 'containerd.events.TaskStart'],
    ['k8s.io', '/tasks/exit', 'containerd.events.TaskExit'],
  ]);
  expect(decodeMessage('containerd.events.TaskExit', envelopes[1].event.value)).toMatchObject({
    containerId: 'c1',
    exitStatus: 143,
  });
});
