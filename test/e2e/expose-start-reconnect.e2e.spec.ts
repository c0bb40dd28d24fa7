import { jest } from '@jest/globals';
import { Controller, Logger, Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientsModule, MessagePattern, Payload } from '@nestjs/microservices';
import { createServer, type Server, type Socket } from 'node:net';
import { WsMsgpackClient, WsMsgpackStatus, type WsMsgpackClientOptions } from '../../src/index.js';
import { first, freePort, startService, until, WAIT_MS, within, type TestService } from '../support/helpers.js';

@Controller()
class AgentController {
  @MessagePattern('agent.double')
  double(@Payload() n: number): number {
    return n * 2;
  }
}

async function clientApp(options: WsMsgpackClientOptions): Promise<{ app: INestApplication; client: WsMsgpackClient; statuses: string[]; errors: Error[] }> {
  @Module({ controllers: [AgentController], imports: [ClientsModule.register([{ name: 'HUB', customClass: WsMsgpackClient, options }])] })
  class AgentModule {}
  const app = await NestFactory.create(AgentModule, { logger: false });
  const client = app.get<WsMsgpackClient>('HUB');
  const errors: Error[] = [];
  client.on('error', (e) => errors.push(e));
  const statuses: string[] = [];
  client.status.subscribe((s) => statuses.push(s));
  app.connectMicroservice({ strategy: client.exposeHandlers() });
  return { app, client, statuses, errors };
}

describe('exposeHandlers() lazy start: reconnect off or on, close while starting', () => {
  afterEach(() => jest.restoreAllMocks());

  it('reconnect: false, hub down at start: the log says the client stopped trying (an error), never that it reconnects in the background', async () => {
    const port = await freePort();
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => {});
    const error = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => {});
    const { app, statuses } = await clientApp({ url: `ws://127.0.0.1:${port}`, reconnect: false });
    try {
      await within(app.startAllMicroservices());
      await until(() => statuses.includes(WsMsgpackStatus.DISCONNECTED), WAIT_MS, 'the one attempt failed');
      await until(() => error.mock.calls.some((c) => /stopped trying/.test(String(c[0]))), WAIT_MS, 'the error');
      expect(warn.mock.calls.map((c) => String(c[0])).filter((w) => w.includes('reconnecting in the background'))).toEqual([]);
      expect(error.mock.calls.map((c) => String(c[0]))).toContainEqual(
        expect.stringMatching(
          /^could not connect to the server \(.*\) and stopped trying \(reconnect is off or its maxAttempts was reached\): the exposed handlers are served only once a call or connect\(\) opens a connection$/,
        ),
      );
    } finally {
      await within(app.close(), WAIT_MS, 'client app close');
    }
  });

  it('reconnect on, hub down at start then up: the handlers are served once it is up', async () => {
    const port = await freePort();
    jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => {});
    const { app } = await clientApp({ url: `ws://127.0.0.1:${port}`, reconnect: { initialDelay: 20, maxDelay: 50 } });
    let hub: TestService | undefined;
    try {
      await within(app.startAllMicroservices());
      hub = await startService({ controllers: [] }, { port });
      await until(() => hub!.server.peers.size === 1, WAIT_MS, 'the client connected in the background');
      expect(await first([...hub.server.peers][0]!.send('agent.double', 21))).toBe(42);
    } finally {
      await within(app.close(), WAIT_MS, 'client app close');
      await hub?.close();
    }
  });

  it('app.close() while the lazy start is still in its handshake (hub accepts TCP, never answers): closes at once, no warning', async () => {
    const sockets: Socket[] = [];
    const closed: boolean[] = [];
    const blackhole: Server = createServer((s) => {
      const i = sockets.push(s) - 1;
      closed[i] = false;
      s.resume();
      s.on('close', () => (closed[i] = true));
    });
    await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', () => r()));
    const port = (blackhole.address() as { port: number }).port;
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => {});
    const { app, statuses } = await clientApp({ url: `ws://127.0.0.1:${port}`, connectTimeout: 60_000, readyTimeout: 60_000 });
    try {
      await within(app.startAllMicroservices());
      await until(() => sockets.length === 1, WAIT_MS, 'handshake under way');
      const t0 = Date.now();
      await within(app.close(), WAIT_MS, 'app.close');
      expect(Date.now() - t0).toBeLessThan(1000);
      await new Promise((r) => setTimeout(r, 50));
      expect(warn.mock.calls.map((c) => String(c[0]))).toEqual([]);
      expect(statuses[statuses.length - 1]).toBe(WsMsgpackStatus.CLOSED);
      await until(() => closed[0] === true, WAIT_MS, 'the handshake socket closed');
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => blackhole.close(r));
    }
  });
});
