/**
 * Regressions found by the fresh-eyes review of the production lifecycle (client side): event
 * order across the connection opening, a throwing headers function, option validation, backoff
 * against a server that drops every connection at once, one refusing replica in a list, and a
 * reconnect that gives up with nobody waiting. Each failed on the code before its fix.
 */
import { Controller } from '@nestjs/common';
import { EventPattern, Payload } from '@nestjs/microservices';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { lastValueFrom } from 'rxjs';
import { WebSocketServer } from 'ws';
import { WsMsgpackClient, WsMsgpackStatus } from '../../src/index.js';
import { startService, until, WAIT_MS, within, type TestService } from '../support/helpers.js';

const events: unknown[] = [];

@Controller()
class LogController {
  @EventPattern('log')
  log(@Payload() v: unknown): void {
    events.push(v);
  }
}

let svc: TestService;
beforeAll(async () => {
  svc = await startService({ controllers: [LogController] });
});
afterAll(async () => {
  await svc.close();
});
beforeEach(() => {
  events.length = 0;
});

const sent = (o: ReturnType<WsMsgpackClient['emit']>): Promise<unknown> => within(lastValueFrom(o, { defaultValue: undefined }));

describe('events keep their order across the connection opening', () => {
  it('an event emitted right after connect() resolves goes out after the events that waited for the connection', async () => {
    const client = svc.client();
    try {
      const ready = client.connect();
      const a = sent(client.emit('log', 1));
      const b = sent(client.emit('log', 2));
      await ready;
      const c = sent(client.emit('log', 3));
      await Promise.all([a, b, c]);
      await until(() => events.length === 3);
      expect(events).toEqual([1, 2, 3]);
    } finally {
      await client.close();
    }
  });

  it("an event emitted in a 'connect' listener goes out after the waiting ones", async () => {
    const client = svc.client();
    try {
      let fromListener: Promise<unknown> | undefined;
      client.on('connect', () => {
        fromListener ??= sent(client.emit('log', 'from listener'));
      });
      const queued = sent(client.emit('log', 'queued'));
      await queued;
      await until(() => fromListener !== undefined);
      await fromListener;
      await until(() => events.length === 2);
      expect(events).toEqual(['queued', 'from listener']);
    } finally {
      await client.close();
    }
  });
});

describe('a headers function that throws', () => {
  it("is reported on 'error' (not only when a call gives up) and the attempt is retried", async () => {
    let calls = 0;
    const client = new WsMsgpackClient({
      url: svc.url,
      reconnect: { initialDelay: 5, maxDelay: 10 },
      waitForReady: true, // connect() waits through the failed attempts
      headers: () => {
        calls++;
        if (calls < 3) throw new Error('token store down');
        return { authorization: 'Bearer ok' };
      },
    });
    const errors: Error[] = [];
    client.on('error', (e) => errors.push(e));
    try {
      await within(client.connect());
      expect(calls).toBe(3);
      expect(errors.map((e) => e.message)).toEqual(['the headers function threw: token store down', 'the headers function threw: token store down']);
    } finally {
      await client.close();
    }
  });
});

describe('client options are checked at construction', () => {
  it.each([
    [{ connectTimeout: Infinity }, /^nestjs-ws-msgpack: option connectTimeout must be a finite number of milliseconds > 0, got Infinity$/],
    [{ connectTimeout: 0 }, /option connectTimeout/],
    [{ readyTimeout: -1 }, /option readyTimeout must be a number of milliseconds >= 0/],
    [{ timeout: Number.NaN }, /option timeout/],
    [{ maxPendingEvents: 1.5 }, /option maxPendingEvents must be a whole number >= 0 or Infinity/],
    [{ reconnect: { factor: 0.5 } }, /option reconnect\.factor must be a finite number >= 1/],
    [{ reconnect: { maxAttempts: 0 } }, /option reconnect\.maxAttempts/],
    [{ reconnect: { maxDelay: Infinity } }, /option reconnect\.maxDelay/],
    [{ reconnect: 'yes' }, /option reconnect must be true, false or an object, got "yes"/],
  ])('%j is refused', (bad, message) => {
    expect(() => new WsMsgpackClient({ url: 'ws://127.0.0.1:1', ...(bad as object) })).toThrow(message);
  });

  it('Infinity is accepted where it means "no limit"', () => {
    expect(() => new WsMsgpackClient({ url: 'ws://127.0.0.1:1', readyTimeout: Infinity, maxPendingEvents: Infinity, reconnect: { maxAttempts: Infinity } })).not.toThrow();
  });
});

/** A WebSocket server speaking wsmp.v1 that closes every connection as soon as it opens. */
async function droppingServer(): Promise<{ url: string; opened: () => number; close(): Promise<void> }> {
  const http: HttpServer = createServer();
  const wss = new WebSocketServer({ server: http, handleProtocols: () => 'wsmp.v1' });
  let opened = 0;
  wss.on('connection', (ws) => {
    opened++;
    ws.close(1011, 'crash loop');
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}`,
    opened: () => opened,
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

/** An HTTP server that refuses every upgrade with `status`. */
async function refusingServer(status: number): Promise<{ url: string; refused: () => number; close(): Promise<void> }> {
  const http: HttpServer = createServer();
  let refused = 0;
  http.on('upgrade', (_req, socket) => {
    refused++;
    socket.end(`HTTP/1.1 ${status} Refused\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}`,
    refused: () => refused,
    close: () => new Promise<void>((resolve) => http.close(() => resolve())),
  };
}

describe('backoff and giving up', () => {
  it('a connection dropped at once counts as a failed attempt: maxAttempts ends a crash loop', async () => {
    const server = await droppingServer();
    const client = new WsMsgpackClient({ url: server.url, reconnect: { initialDelay: 1, maxDelay: 5, maxAttempts: 3 } });
    const errors: Error[] = [];
    client.on('error', (e) => errors.push(e));
    const statuses: string[] = [];
    client.status.subscribe((s) => statuses.push(s));
    try {
      await within(client.connect());
      // Before the fix every open reset the count: the client reconnected without end.
      await until(() => statuses.includes(WsMsgpackStatus.DISCONNECTED), WAIT_MS, 'gave up');
      expect(server.opened()).toBe(3);
      // Nobody was waiting: giving up is reported, not only a status.
      expect(errors.map((e) => e.message)).toEqual([expect.stringContaining('stopped reconnecting: connection closed (code 1011')]);
    } finally {
      await client.close();
      await server.close();
    }
  });

  it('one replica refusing with 404 does not stop the list: the next one is tried and connects', async () => {
    const refusing = await refusingServer(404);
    const client = new WsMsgpackClient({ url: [refusing.url, svc.url], reconnect: { initialDelay: 1, maxDelay: 5 } });
    client.on('error', () => {});
    try {
      await within(client.connect());
      expect(refusing.refused()).toBe(1);
    } finally {
      await client.close();
      await refusing.close();
    }
  });

  it('every replica refusing with 4xx gives up (once per replica, not forever)', async () => {
    const a = await refusingServer(403);
    const b = await refusingServer(401);
    const client = new WsMsgpackClient({ url: [a.url, b.url], reconnect: { initialDelay: 1, maxDelay: 5 } });
    client.on('error', () => {});
    try {
      const err = await within(
        client.connect().then(
          () => undefined,
          (e: unknown) => e as Error,
        ),
      );
      expect(err?.message).toMatch(/HTTP 40[13]/);
      expect(a.refused() + b.refused()).toBe(2);
    } finally {
      await client.close();
      await a.close();
      await b.close();
    }
  });
});
