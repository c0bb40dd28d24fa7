import { createServer, STATUS_CODES } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Controller } from '@nestjs/common';
import { EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import { interval, lastValueFrom, type Observable } from 'rxjs';
import WebSocket from 'ws';
import { WsMsgpackClient, WsMsgpackRecordBuilder, WsMsgpackStatus, type WsMsgpackServerOptions } from '../../src/index.js';
import { errorOf, first, freePort, startService, until, WAIT_MS, within, type TestService } from '../support/helpers.js';
import { RawServer } from '../support/raw-peer.js';
import { codeOf, holds } from '../support/streams.js';

/** What the servers saw, across restarts. */
const seen = { calls: 0, events: [] as unknown[] };

@Controller()
class EchoController {
  @MessagePattern('echo')
  echo(@Payload() v: unknown): unknown {
    seen.calls++;
    return v;
  }

  @MessagePattern('ticks')
  ticks(): Observable<number> {
    seen.calls++;
    return interval(5);
  }

  @EventPattern('log')
  log(@Payload() v: unknown): void {
    seen.events.push(v);
  }
}

/** A service on a fixed port, so that it can go away and come back at the same address. */
async function serviceOn(port: number, options: WsMsgpackServerOptions = {}): Promise<TestService> {
  return startService({ controllers: [EchoController] }, { port, ...options });
}

/** A client that records its status values. */
function watched(options: ConstructorParameters<typeof WsMsgpackClient>[0]): { client: WsMsgpackClient; statuses: string[] } {
  const client = new WsMsgpackClient(options);
  const statuses: string[] = [];
  client.status.subscribe((s) => statuses.push(s));
  client.on('error', () => {});
  return { client, statuses };
}

const fast = { initialDelay: 10, maxDelay: 50 };

describe('reconnect (on by default)', () => {
  it('after a server restart the client reconnects by itself (no call needed); the call in flight failed UNAVAILABLE and was not re-sent', async () => {
    const port = await freePort();
    let svc = await serviceOn(port);
    const { client, statuses } = watched({ url: `ws://127.0.0.1:${port}`, reconnect: fast });
    try {
      await client.connect();
      seen.calls = 0;
      const inFlight = errorOf(client.send('ticks', null));
      await until(() => seen.calls === 1, WAIT_MS, 'the stream started');
      await svc.close();
      expect(codeOf(await inFlight)).toBe('UNAVAILABLE');
      await until(() => statuses.includes(WsMsgpackStatus.RECONNECTING), WAIT_MS, 'reconnecting');
      svc = await serviceOn(port);
      await until(() => statuses[statuses.length - 1] === WsMsgpackStatus.CONNECTED, WAIT_MS, 'the client came back by itself');
      expect(svc.server.connectionCount).toBe(1);
      expect(await first(client.send('echo', 'again'))).toBe('again');
      expect(seen.calls).toBe(2); // the stream was not re-sent: one ticks, one echo
    } finally {
      await client.close();
      await svc.close();
    }
    expect(statuses[0]).toBe(WsMsgpackStatus.CONNECTING);
    expect(statuses.slice(-1)).toEqual([WsMsgpackStatus.CLOSED]);
  });

  it('with waitForReady: true, calls made while disconnected wait for the connection, up to their deadline; a call can still fail fast', async () => {
    const port = await freePort();
    let svc = await serviceOn(port);
    const { client } = watched({ url: `ws://127.0.0.1:${port}`, reconnect: fast, waitForReady: true });
    try {
      await client.connect();
      await svc.close();
      await until(() => !connected(client), WAIT_MS, 'disconnected');
      const waiting = first(client.send('echo', 'waited'), WAIT_MS);
      const tooShort = errorOf(client.send('echo', new WsMsgpackRecordBuilder('x').setTimeout(50).build()));
      const failFast = errorOf(client.send('echo', new WsMsgpackRecordBuilder('x').setWaitForReady(false).build()));
      // At once (the last attempt failed) or with the attempt under way (refused, or a 503 while the
      // server was still closing): either way it names that failure (client-parity tests the details).
      expect(await failFast).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/cannot connect to/) });
      expect(await tooShort).toMatchObject({ code: 'DEADLINE_EXCEEDED', message: 'deadline of 50 ms exceeded while waiting for a connection' });
      svc = await serviceOn(port);
      expect(await waiting).toBe('waited');
    } finally {
      await client.close();
      await svc.close();
    }
  });

  it('with waitForReady: true, events emitted while disconnected are sent, in order, once connected; past maxPendingEvents they fail', async () => {
    const port = await freePort();
    let svc = await serviceOn(port);
    const { client } = watched({ url: `ws://127.0.0.1:${port}`, reconnect: fast, maxPendingEvents: 3, waitForReady: true });
    try {
      await client.connect();
      await svc.close();
      await until(() => !connected(client), WAIT_MS, 'disconnected');
      seen.events = [];
      const sent = [1, 2, 3].map((n) => errorOrDone(client.emit('log', n)));
      expect(codeOf(await errorOrDone(client.emit('log', 4)))).toBe('UNAVAILABLE'); // the fourth does not fit
      svc = await serviceOn(port);
      expect(await within(Promise.all(sent))).toEqual(['done', 'done', 'done']);
      await until(() => seen.events.length === 3, WAIT_MS, 'events delivered');
      expect(seen.events).toEqual([1, 2, 3]);
    } finally {
      await client.close();
      await svc.close();
    }
  });

  it('a list of URLs: when a replica goes away, the client continues on the next one', async () => {
    const a = await startService({ controllers: [EchoController] });
    const b = await startService({ controllers: [EchoController] });
    const { client } = watched({ url: [a.url, b.url], reconnect: fast });
    try {
      await client.connect();
      expect([a.server.connectionCount, b.server.connectionCount]).toEqual([1, 0]);
      await a.close();
      await until(() => b.server.connectionCount === 1, WAIT_MS, 'failed over to b');
      expect(await first(client.send('echo', 'b'))).toBe('b');
    } finally {
      await client.close();
      await b.close();
    }
  });

  it('headers from a function are re-evaluated on every (re)connect (a refreshed token)', async () => {
    const port = await freePort();
    const tokens: unknown[] = [];
    const opts: WsMsgpackServerOptions = {
      authenticate: (req) => {
        tokens.push(req.headers.authorization);
        return true;
      },
    };
    let svc = await serviceOn(port, opts);
    let n = 0;
    const { client } = watched({ url: `ws://127.0.0.1:${port}`, reconnect: fast, headers: async () => ({ authorization: `Bearer t${++n}` }) });
    try {
      await client.connect();
      await svc.close();
      svc = await serviceOn(port, opts);
      await until(() => svc.server.connectionCount === 1, WAIT_MS, 'reconnected');
      expect(tokens[0]).toBe('Bearer t1');
      expect(tokens[tokens.length - 1]).toBe(`Bearer t${n}`);
      expect(n).toBeGreaterThanOrEqual(2);
    } finally {
      await client.close();
      await svc.close();
    }
  });

  it("a headers function that throws is reported on 'error' (not only when a call gives up), and the attempt is retried", async () => {
    const svc = await startService({ controllers: [EchoController] });
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
      await svc.close();
    }
  });

  it('maxAttempts: after that many failed attempts the client gives up (disconnected); the call waiting for ready fails naming the failure', async () => {
    const port = await freePort(); // nobody listens
    const { client, statuses } = watched({ url: `ws://127.0.0.1:${port}`, reconnect: { ...fast, maxAttempts: 3 }, waitForReady: true });
    try {
      const err = await errorOf(client.send('echo', 1));
      expect(err).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/cannot connect/) });
      expect(statuses).toEqual([WsMsgpackStatus.CONNECTING, WsMsgpackStatus.RECONNECTING, WsMsgpackStatus.DISCONNECTED]);
    } finally {
      await client.close();
    }
  });

  it('a refusal retrying cannot fix (HTTP 401) stops at once: disconnected, no retry', async () => {
    let asked = 0;
    const svc = await startService({ controllers: [EchoController] }, { authenticate: () => (asked++, false) });
    const { client, statuses } = watched({ url: svc.url, reconnect: fast });
    try {
      const err = await errorOf(client.send('echo', 1));
      expect(err).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/HTTP 401/) });
      expect(statuses).toEqual([WsMsgpackStatus.CONNECTING, WsMsgpackStatus.DISCONNECTED]);
      expect(asked).toBe(1);
    } finally {
      await client.close();
      await svc.close();
    }
  });

  it('reconnect: false makes one attempt per connect()', async () => {
    const port = await freePort();
    const { client, statuses } = watched({ url: `ws://127.0.0.1:${port}`, reconnect: false });
    try {
      expect(codeOf(await errorOf(client.send('echo', 1)))).toBe('UNAVAILABLE');
      expect(statuses).toEqual([WsMsgpackStatus.CONNECTING, WsMsgpackStatus.DISCONNECTED]);
    } finally {
      await client.close();
    }
  });
});

/** An HTTP server on 127.0.0.1 port 0 that refuses every WebSocket upgrade with `status` (503: a refusal worth retrying), counting them. */
async function refusing(status = 503): Promise<{ url: string; attempts(): number; close(): Promise<void> }> {
  let attempts = 0;
  const server = createServer((_req, res) => res.writeHead(status).end());
  server.on('upgrade', (_req, socket) => {
    attempts++;
    // Node leaves an upgraded socket's errors to its listener: a client that gives up on the
    // attempt (connectTimeout, close()) may reset it while the refusal is written.
    socket.on('error', () => {});
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Refused'}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}`,
    attempts: () => attempts,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('reconnect backoff against a server refusing with 503 (the schedule itself is unit-tested in test/unit/backoff.spec.ts)', () => {
  it('the attempts back off: within a 1 s window, a handful of attempts, not a reconnect loop (the delay grows from initialDelay)', async () => {
    const server = await refusing();
    // Ceilings 80, 160, 320, 640, 640… after the second attempt: about 5 attempts a second on average.
    // A zero-delay loop makes hundreds; a delay that never grows (≤ 20 ms) about 50. 20 is a bound
    // correct code reaches with a probability below 1e-8 (the sum of 15 draws in [0, 640) under 1 s).
    const { client, statuses } = watched({ url: server.url, reconnect: { initialDelay: 20, factor: 2, maxDelay: 640 } });
    try {
      client.connect().catch(() => {});
      await until(() => server.attempts() >= 2, WAIT_MS, 'a second attempt');
      const before = server.attempts();
      // The window is what is measured: there is no event to await instead.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const during = server.attempts() - before;
      expect(during).toBeLessThanOrEqual(20);
      expect(statuses).toEqual([WsMsgpackStatus.CONNECTING, WsMsgpackStatus.RECONNECTING]); // still trying, never gave up
    } finally {
      await client.close();
      await server.close();
    }
  });

  it('the delay stops growing at maxDelay: attempts go on at that pace (25 of them, where an uncapped factor of 4 would take hours)', async () => {
    const server = await refusing();
    // Capped: each wait is under 20 ms, 25 attempts take well under a second. Uncapped: 40, 160, 640, 2,560, 10,240 ms…
    const { client, statuses } = watched({ url: server.url, reconnect: { initialDelay: 10, factor: 4, maxDelay: 20 } });
    try {
      client.connect().catch(() => {});
      await until(() => server.attempts() >= 25, 2 * WAIT_MS, '25 attempts');
      expect(statuses).toEqual([WsMsgpackStatus.CONNECTING, WsMsgpackStatus.RECONNECTING]);
    } finally {
      await client.close();
      await server.close();
    }
  });
});

describe('giving up: failed attempts are counted, refusals per replica', () => {
  it('a connection the server drops at once counts as a failed attempt: maxAttempts ends a crash loop, and giving up is reported', async () => {
    const server = await RawServer.start({ onConnection: (ws) => ws.close(1011, 'crash loop') });
    const client = new WsMsgpackClient({ url: server.url, reconnect: { initialDelay: 1, maxDelay: 5, maxAttempts: 3 } });
    const errors: Error[] = [];
    client.on('error', (e) => errors.push(e));
    const statuses: string[] = [];
    client.status.subscribe((s) => statuses.push(s));
    try {
      await within(client.connect());
      await until(() => statuses.includes(WsMsgpackStatus.DISCONNECTED), WAIT_MS, 'gave up');
      expect(server.connections).toBe(3);
      // Nobody was waiting: giving up is reported, not only a status.
      expect(errors.map((e) => e.message)).toEqual([expect.stringContaining('stopped reconnecting: connection closed (code 1011')]);
    } finally {
      await client.close();
      await server.close();
    }
  });

  it('one replica refusing with 404 does not stop the list: the next one is tried and connects', async () => {
    const refused = await refusing(404);
    const svc = await startService({ controllers: [EchoController] });
    const client = new WsMsgpackClient({ url: [refused.url, svc.url], reconnect: { initialDelay: 1, maxDelay: 5 } });
    client.on('error', () => {});
    try {
      await within(client.connect());
      expect(refused.attempts()).toBe(1);
    } finally {
      await client.close();
      await refused.close();
      await svc.close();
    }
  });

  it('every replica refusing with 4xx gives up, once per replica (not forever)', async () => {
    const a = await refusing(403);
    const b = await refusing(401);
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
      expect(a.attempts() + b.attempts()).toBe(2);
    } finally {
      await client.close();
      await a.close();
      await b.close();
    }
  });
});

/** 'done' when the Observable completes, else its error. */
function errorOrDone(o: Observable<unknown>): Promise<unknown> {
  return new Promise((resolve) => o.subscribe({ error: resolve, complete: () => resolve('done') }));
}

/** True while the client has an open connection. */
function connected(client: WsMsgpackClient): boolean {
  try {
    client.unwrap();
    return true;
  } catch {
    return false;
  }
}

describe('a frame is never written to a socket that is not OPEN, and never lost', () => {
  // A closing socket takes no new call or event at all: they wait for the next connection like
  // any call made while disconnected (with waitForReady: false too, as the last attempt did not
  // fail: fail-fast fails at once only then, as gRPC and Nest TCP do; client-parity tests that).
  const noted: unknown[] = [];
  @Controller()
  class NotedController {
    @MessagePattern('ping')
    ping(@Payload() n: number): number {
      return n + 1;
    }

    @EventPattern('noted')
    noted(@Payload() data: unknown): void {
      noted.push(data);
    }
  }
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [NotedController] });
  });
  afterAll(() => svc.close());

  it.each([
    ['waitForReady: true (the default)', {}],
    ['waitForReady: false (fail-fast)', { waitForReady: false }],
  ])('%s: send() and emit() while the socket is CLOSING wait and arrive once, on the next connection', async (what, options) => {
    const client = svc.client(options);
    await client.connect();
    const ws = client.unwrap<WebSocket>();
    ws.close();
    expect(ws.readyState).toBe(WebSocket.CLOSING);
    const event = `while closing, ${what}`;
    const answer = first(client.send<number>('ping', 1), WAIT_MS);
    const emitted = within(lastValueFrom(client.emit('noted', event), { defaultValue: undefined }), WAIT_MS, 'emit after reconnect');
    expect(await answer).toBe(2);
    await emitted;
    await until(() => noted.includes(event), WAIT_MS, 'event after reconnect');
    expect(noted.filter((e) => e === event)).toHaveLength(1);
    expect(client.unwrap()).not.toBe(ws);
  });
});

describe('a connection whose socket is closing (against a bare wsmp.v1 server that never finishes the closing handshake)', () => {
  it('takes no new call: a call made meanwhile waits for the next connection instead of failing at once', async () => {
    const raw = await RawServer.start({
      answer: true,
      onConnection: (ws, n) => {
        if (n !== 1) return;
        // The first connection: a close frame, then the closing handshake never completes.
        setImmediate(() => {
          ws.close(1000, 'bye');
          (ws as unknown as { _socket: { pause(): void } })._socket.pause();
        });
      },
    });
    const c = new WsMsgpackClient({ url: raw.url, reconnect: { initialDelay: 1, maxDelay: 5 } });
    c.on('error', () => {});
    try {
      const socket = (await c.connect()).socket as unknown as { readyState: number; terminate(): void };
      await until(() => socket.readyState === WebSocket.CLOSING, WAIT_MS, 'the client socket CLOSING');
      let settled: unknown = 'pending';
      const call = new Promise<unknown>((resolve) => c.send('x', null).subscribe({ next: resolve, error: resolve }));
      void call.then((v) => (settled = v));
      await holds(() => settled === 'pending', 'the call waits');
      // Cut the half-closed connection: the client reconnects and the waiting call goes out there.
      socket.terminate();
      expect(await within(call)).toBe('ok');
      expect(raw.connections).toBe(2);
    } finally {
      await c.close();
      await raw.close();
    }
  });
});
