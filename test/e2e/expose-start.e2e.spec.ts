// Issue 16, item 2: a service that exposes handlers starts without its hub. By default
// `startAllMicroservices()` returns at once and the client connects in the background (its
// handlers served from the first connection on); `waitForConnection: true` keeps the fail-fast start.
import { jest } from '@jest/globals';
import { Controller, Logger, Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientsModule, MessagePattern, Payload } from '@nestjs/microservices';
import { WsMsgpackClient, WsMsgpackStatus, type WsMsgpackClientOptions } from '../../src/index.js';
import type { WsMsgpackExposeOptions } from '../../src/client/client-handlers.js';
import { first, freePort, startService, until, WAIT_MS, within, type TestService } from '../support/helpers.js';

@Controller()
class AgentController {
  @MessagePattern('agent.double')
  double(@Payload() n: number): number {
    return n * 2;
  }
}

/** A client app as users write one, not started yet: `ClientsModule` entry HUB, its handlers exposed. */
async function clientApp(options: WsMsgpackClientOptions, expose?: WsMsgpackExposeOptions): Promise<{ app: INestApplication; client: WsMsgpackClient; statuses: string[] }> {
  @Module({ controllers: [AgentController], imports: [ClientsModule.register([{ name: 'HUB', customClass: WsMsgpackClient, options }])] })
  class AgentModule {}
  const app = await NestFactory.create(AgentModule, { logger: false });
  const client = app.get<WsMsgpackClient>('HUB');
  client.on('error', () => {});
  const statuses: string[] = [];
  client.status.subscribe((s) => statuses.push(s));
  app.connectMicroservice({ strategy: client.exposeHandlers(expose) });
  return { app, client, statuses };
}

const fast = { initialDelay: 5, maxDelay: 20 };

describe('exposeHandlers(): start-up does not depend on the hub', () => {
  afterEach(() => jest.restoreAllMocks());

  it('with the hub down, startAllMicroservices() returns at once; the client connects in the background and serves from the first connection', async () => {
    const port = await freePort(); // the hub is not there yet
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => {});
    // readyTimeout is longer than the bounded wait: a start that waited for the hub would fail here.
    const { app, statuses } = await clientApp({ url: `ws://127.0.0.1:${port}`, reconnect: fast, readyTimeout: 60_000 });
    let hub: TestService | undefined;
    try {
      await within(app.startAllMicroservices(), WAIT_MS, 'startAllMicroservices without the hub');
      await within(app.init(), WAIT_MS, 'app init');
      await until(() => statuses.includes(WsMsgpackStatus.RECONNECTING), WAIT_MS, 'a refused attempt, reconnecting');
      expect(statuses).not.toContain(WsMsgpackStatus.CONNECTED);
      await until(() => warn.mock.calls.some((c) => String(c[0]).includes('not connected to the server yet')), WAIT_MS, 'one warning');
      hub = await startService({ controllers: [] }, { port });
      await until(() => statuses[statuses.length - 1] === WsMsgpackStatus.CONNECTED, WAIT_MS, 'connected in the background');
      const peer = [...hub.server.peers][0]!;
      expect(await first(peer.send('agent.double', 21))).toBe(42);
      expect(warn.mock.calls.filter((c) => String(c[0]).includes('not connected to the server yet'))).toHaveLength(1);
    } finally {
      await within(app.close(), WAIT_MS, 'client app close');
      await hub?.close();
    }
  });

  it('with the hub up, the handlers are served once connected (no wait needed by the app)', async () => {
    const hub = await startService({ controllers: [] });
    const { app, statuses } = await clientApp({ url: hub.url });
    try {
      await within(app.startAllMicroservices());
      await until(() => hub.server.peers.size === 1 && statuses.includes(WsMsgpackStatus.CONNECTED), WAIT_MS, 'connected');
      expect(await first([...hub.server.peers][0]!.send('agent.double', 4))).toBe(8);
    } finally {
      await within(app.close());
      await hub.close();
    }
  });

  it('waitForConnection: true keeps the fail-fast start: without the hub, startAllMicroservices() fails with UNAVAILABLE after readyTimeout', async () => {
    const port = await freePort();
    const { app } = await clientApp({ url: `ws://127.0.0.1:${port}`, reconnect: fast, readyTimeout: 300 }, { waitForConnection: true });
    try {
      const error = await within(
        app.startAllMicroservices().then(
          () => undefined,
          (e: unknown) => e,
        ),
      );
      expect(error).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/not connected within 300 ms; last failure: cannot connect .*ECONNREFUSED/) });
    } finally {
      await within(app.close());
    }
  });

  it('waitForConnection: true with the hub up: startAllMicroservices() resolves connected, the hub can call at once', async () => {
    const hub = await startService({ controllers: [] });
    const { app, client } = await clientApp({ url: hub.url }, { waitForConnection: true });
    try {
      await within(app.startAllMicroservices());
      expect(client.unwrap()).toBeDefined(); // connected: unwrap() throws when not
      await until(() => hub.server.peers.size === 1, WAIT_MS, 'the hub sees the client');
      expect(await first([...hub.server.peers][0]!.send('agent.double', 5))).toBe(10);
    } finally {
      await within(app.close());
      await hub.close();
    }
  });
});
