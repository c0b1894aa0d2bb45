// undici is loaded by the first request, not by importing the lib or constructing a client: the
// CLI's commands that never reach a registry must not pay ~30 ms to evaluate it.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

type TransportModule = typeof import('../src/transport');

/** A fresh module registry in which requiring 'undici' is observed. */
function isolatedTransport(): { transport: TransportModule; undiciLoads: () => number } {
  let loads = 0;
  let transport!: TransportModule;
  jest.isolateModules(() => {
    jest.doMock('undici', () => {
      loads++;
      return jest.requireActual('undici');
    });
    transport = jest.requireActual('../src/transport');
  });
  return { transport, undiciLoads: () => loads };
}

afterEach(() => jest.dontMock('undici'));

it('does not load undici for a transport that sends nothing, and close() is a no-op', async () => {
  const { transport, undiciLoads } = isolatedTransport();
  const t = new transport.Transport();
  await t.close();
  expect(undiciLoads()).toBe(0);
});

it('loads undici on the first request, once', async () => {
  const server = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  try {
    const { transport, undiciLoads } = isolatedTransport();
    const t = new transport.Transport();
    try {
      for (let i = 0; i < 2; i++) {
        const res = await t.send({ method: 'GET', url });
        expect(res.status).toBe(200);
        expect(await res.body.text()).toBe('ok');
      }
      expect(undiciLoads()).toBe(1);
    } finally {
      await t.close();
    }
  } finally {
    server.close();
  }
});

it('refuses a request after close instead of opening a new connection pool', async () => {
  const { transport } = isolatedTransport();
  const t = new transport.Transport();
  await t.close();
  await expect(t.once({ method: 'GET', url: 'http://127.0.0.1:9/' })).rejects.toThrow(
    /after the registry connection was closed/,
  );
});
