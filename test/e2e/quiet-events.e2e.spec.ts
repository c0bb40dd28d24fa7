/**
 * Issue 16, item 3 ("same review for other per-event logs"): an event no handler takes.
 * - On a server, Nest's "There is no matching event handler" is logged once per pattern, not once
 *   per event (a peer repeating it could flood the log), still at error level.
 * - On a client app exposing handlers, a broadcast of a pattern it does not handle is no error:
 *   debug, once per pattern.
 * - On the browser client, an event no handle()d pattern takes is no error either: not on
 *   'error', counted in droppedEvents.
 */
import { jest } from '@jest/globals';
import { Controller, Logger } from '@nestjs/common';
import { EventPattern, MessagePattern } from '@nestjs/microservices';
import { WebSocket as UndiciWebSocket } from 'undici';
import { WsMsgpackClient, WsPeer, type WsMsgpackPeer } from '../../src/index.js';
import { WsMsgpackWebClient, type WebSocketConstructor } from '../../src/web/index.js';
import { first, startClientApp, startService, until, type TestService } from '../support/helpers.js';

@Controller()
class HubController {
  @MessagePattern('whoami')
  whoami(@WsPeer() peer: WsMsgpackPeer): string {
    return peer.id;
  }
}

@Controller()
class AgentController {
  @EventPattern('handled')
  handled(_data: unknown): void {}
}

const NO_HANDLER = /^There is no matching event handler defined in the remote service\. Event pattern: (.*) \(logged once per pattern\)$/;

describe('an event no handler takes', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [HubController] });
  });
  afterAll(() => svc.close());

  it('on the server: logged once per pattern, at error level', async () => {
    const errors = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => {});
    try {
      const client = svc.client();
      for (let i = 0; i < 20; i++) await first(client.emit('nobody.a', i));
      for (let i = 0; i < 5; i++) await first(client.emit('nobody.b', i));
      expect(await first(client.send('whoami', null))).toEqual(expect.any(String)); // the events were handled before this
      const lines = errors.mock.calls.map((a) => String(a[0])).filter((m) => NO_HANDLER.test(m));
      expect(lines.map((m) => NO_HANDLER.exec(m)![1])).toEqual(['"nobody.a"', '"nobody.b"']);
    } finally {
      errors.mockRestore();
    }
  });

  it('on a client app exposing handlers: a broadcast of another pattern is debug, once per pattern, never an error', async () => {
    const errors = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => {});
    const debugs = jest.spyOn(Logger.prototype, 'debug').mockImplementation(() => {});
    const agent = await startClientApp({ controllers: [AgentController] }, { url: svc.url });
    try {
      const id = await first(agent.client.send<string>('whoami', null));
      await until(() => svc.server.peers.has(id), 5000, 'the peer');
      for (let i = 0; i < 10; i++) expect(svc.server.broadcast('not.here', i, (p) => p.id === id)).toBe(1);
      await until(() => debugs.mock.calls.some((a) => NO_HANDLER.test(String(a[0]))), 5000, 'the debug line');
      // One more round trip: every broadcast above has been handled by now.
      await first(agent.client.send('whoami', null));
      expect(debugs.mock.calls.filter((a) => NO_HANDLER.test(String(a[0])))).toHaveLength(1);
      expect(errors.mock.calls.filter((a) => NO_HANDLER.test(String(a[0])))).toHaveLength(0);
    } finally {
      await agent.close();
      errors.mockRestore();
      debugs.mockRestore();
    }
  });

  it('on the browser client: not reported on error, counted in droppedEvents', async () => {
    const web = new WsMsgpackWebClient({ url: svc.url, WebSocket: UndiciWebSocket as unknown as WebSocketConstructor });
    const reported: Error[] = [];
    web.on('error', (e) => reported.push(e));
    try {
      web.handle('handled', () => undefined);
      const id = await first(web.send<string>('whoami', null));
      for (let i = 0; i < 3; i++) svc.server.peers.get(id)!.emit('not.here', i).subscribe();
      await until(() => web.droppedEvents === 3, 5000, 'three dropped events');
      expect(reported).toEqual([]);
    } finally {
      await web.close();
    }
  });

  it('the Nest client without exposed handlers counts them too (client.droppedEvents)', async () => {
    const client = new WsMsgpackClient({ url: svc.url });
    try {
      const id = await first(client.send<string>('whoami', null));
      svc.server.peers.get(id)!.emit('not.here', 1).subscribe();
      await until(() => client.droppedEvents === 1, 5000, 'one dropped event');
    } finally {
      await client.close();
    }
  });
});
