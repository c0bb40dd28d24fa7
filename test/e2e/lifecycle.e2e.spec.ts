import { decode, encode } from '@msgpack/msgpack';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import type { Server as HttpServer } from 'node:http';
import { firstValueFrom, lastValueFrom, take, toArray } from 'rxjs';
import WebSocket, { WebSocketServer } from 'ws';
import { WsMsgpackClient, WsMsgpackError, WsMsgpackServer, WsMsgpackStatus } from '../../src/index.js';
import { startHandshake } from '../../src/node/handshake.js';
import { WS_SOCKET_SUPPORT } from '../../src/node/ws-socket.js';
import { ClientCore } from '../../src/session/client-core.js';
import { errorOf, first, startService, until, WAIT_MS, within, type TestService } from '../support/helpers.js';
import { RawPeer, RawServer } from '../support/raw-peer.js';
import { codeOf, holds } from '../support/streams.js';

@Controller()
class PingController {
  @MessagePattern('ping')
  ping(@Payload() n: number): number {
    return n + 1;
  }

  @MessagePattern('hang')
  hang(): Promise<never> {
    return new Promise(() => {});
  }
}

@Module({ controllers: [PingController] })
class PingModule {}

describe('WsMsgpackServer lifecycle', () => {
  it('reports EADDRINUSE through listen(), so app.listen() rejects with a clear message', async () => {
    const svc = await startService({ controllers: [PingController] });
    try {
      const port = svc.server.address()!.port;
      const second = await NestFactory.createMicroservice(PingModule, { strategy: new WsMsgpackServer({ port }), logger: false });
      await expect(within(second.listen())).rejects.toThrow(new RegExp(`port ${port} .*already in use \\(EADDRINUSE\\)`));
      await within(second.close());
    } finally {
      await svc.close();
    }
  });

  it('status goes connected on listen and disconnected on close; close() ends every connection and resolves', async () => {
    const server = new WsMsgpackServer({ port: 0 });
    const statuses: string[] = [];
    server.status.subscribe((s) => statuses.push(s));
    const app = await NestFactory.createMicroservice(PingModule, { strategy: server, logger: false });
    await within(app.listen());
    const url = `ws://127.0.0.1:${server.address()!.port}`;
    const peers = await Promise.all([RawPeer.open(url), RawPeer.open(url)]);
    const client = new WsMsgpackClient({ url });
    const pending = errorOf(client.send('hang', {}));
    await until(() => server.connectionCount === 3, undefined, 'three connections');
    await within(app.close());
    for (const p of peers) expect((await p.whenClosed()).code).toBe(1001);
    expect(await pending).toMatchObject({ code: 'UNAVAILABLE' });
    expect(server.connectionCount).toBe(0);
    expect(statuses).toEqual([WsMsgpackStatus.CONNECTED, WsMsgpackStatus.DISCONNECTED]);
    await client.close();
  });

  it('unwrap() returns the ws WebSocketServer, and throws before listen', async () => {
    const server = new WsMsgpackServer({ port: 0 });
    expect(() => server.unwrap()).toThrow(/Not initialized/);
    const app = await NestFactory.createMicroservice(PingModule, { strategy: server, logger: false });
    await within(app.listen());
    expect(server.unwrap()).toBeInstanceOf(WebSocketServer);
    await within(app.close());
  });

  it('on() registers connection and disconnect listeners, also before listen()', async () => {
    const server = new WsMsgpackServer({ port: 0 });
    const events: string[] = [];
    server.on('connection', (_ws, req) => events.push(`connect ${req.url}`));
    server.on('disconnect', (_ws, code) => events.push(`disconnect ${code}`));
    const app = await NestFactory.createMicroservice(PingModule, { strategy: server, logger: false });
    await within(app.listen());
    const client = new WsMsgpackClient({ url: `ws://127.0.0.1:${server.address()!.port}/x` });
    expect(await first(client.send('ping', 1))).toBe(2);
    await client.close();
    await until(() => events.length === 2, undefined, 'disconnect event');
    expect(events).toEqual(['connect /x', 'disconnect 1000']);
    await within(app.close());
  });

  it('a path restricts which upgrades are accepted', async () => {
    const svc = await startService({ controllers: [PingController] }, { path: '/rpc' });
    try {
      expect(await first(svc.client().send('ping', 1))).toBe(2);
      const wrong = new WsMsgpackClient({ url: svc.url.replace('/rpc', '/other') });
      const err = await errorOf(wrong.send('ping', 1));
      expect(err).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/404/) });
      await wrong.close();
    } finally {
      await svc.close();
    }
  });

  it('authenticate() refuses upgrades with HTTP 401 and lets authorised ones in', async () => {
    const svc = await startService({ controllers: [PingController] }, { authenticate: (req) => req.headers.authorization === 'Bearer good' });
    try {
      const ok = svc.client({ headers: { authorization: 'Bearer good' } });
      expect(await first(ok.send('ping', 1))).toBe(2);
      const bad = svc.client({ headers: { authorization: 'Bearer bad' } });
      expect(await errorOf(bad.send('ping', 1))).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/401/) });
    } finally {
      await svc.close();
    }
  });
});

describe('WsMsgpackServer: close() while listen() is still binding', () => {
  it('host "localhost" (a DNS lookup first): nothing is left listening, the status ends disconnected, listen() ends', async () => {
    const server = new WsMsgpackServer({ port: 0, host: 'localhost' });
    const statuses: string[] = [];
    server.status.subscribe((s) => statuses.push(s));
    const listened = new Promise<unknown[]>((resolve) => server.listen((...args) => resolve(args)));
    const http = (server as unknown as { ownHttpServer: HttpServer }).ownHttpServer;
    // The bind either happens (then the server must close it) or is called off (then 'close' fires).
    const bindSettled = new Promise((resolve) => {
      http.once('listening', resolve);
      http.once('close', resolve);
    });
    expect(http.listening).toBe(false); // still looking 'localhost' up
    await within(server.close(), WAIT_MS, 'close()');
    await within(bindSettled, WAIT_MS, 'the bind attempt settled');
    await within(listened, WAIT_MS, 'the listen() callback'); // Nest's app.listen() must not hang
    await holds(() => !http.listening, 'the HTTP server stays closed', 10);
    expect(http.listening).toBe(false);
    expect(server.address()).toBeNull();
    expect(statuses).not.toContain(WsMsgpackStatus.CONNECTED);
    expect(statuses.at(-1)).toBe(WsMsgpackStatus.DISCONNECTED);
  });

  it('the server can listen again after such a close()', async () => {
    const server = new WsMsgpackServer({ port: 0, host: 'localhost' });
    server.listen(() => {});
    await within(server.close(), WAIT_MS, 'close()');
    await within(new Promise<void>((resolve, reject) => server.listen((e) => (e ? reject(e) : resolve()))), WAIT_MS, 'listen again');
    expect(server.address()?.port).toBeGreaterThan(0);
    await within(server.close(), WAIT_MS, 'close again');
    expect(server.address()).toBeNull();
  });
});

describe('WsMsgpackClient lifecycle', () => {
  it('connects lazily on the first send and only once for concurrent callers', async () => {
    const svc = await startService({ controllers: [PingController] });
    try {
      const c = svc.client();
      const statuses: string[] = [];
      c.status.subscribe((s) => statuses.push(s));
      expect(() => c.unwrap()).toThrow(/Not initialized/);
      const [a, b] = await Promise.all([c.connect(), c.connect()]);
      expect(a).toBe(b);
      expect(await first(c.send('ping', 1))).toBe(2);
      expect(svc.server.connectionCount).toBe(1);
      expect(c.unwrap<{ protocol: string }>().protocol).toBe('wsmp.v1');
      await c.close();
      expect(statuses).toEqual(['connecting', 'connected', 'closed']);
    } finally {
      await svc.close();
    }
  });

  it('send() is cold: nothing is sent until subscription', async () => {
    const svc = await startService({ controllers: [PingController] });
    try {
      const c = svc.client();
      const call = c.send('ping', 1);
      expect(svc.server.connectionCount).toBe(0);
      expect(await first(call)).toBe(2);
      expect(await first(call)).toBe(2); // each subscription is its own call
    } finally {
      await svc.close();
    }
  });

  it('fails calls with UNAVAILABLE when the server is unreachable, and does not hang', async () => {
    const svc = await startService({ controllers: [PingController] });
    const url = svc.url;
    await svc.close();
    const once = new WsMsgpackClient({ url, connectTimeout: 2000, reconnect: false });
    const err = await errorOf(once.send('ping', 1));
    expect(err).toBeInstanceOf(WsMsgpackError);
    expect(err).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/cannot connect/) });
    // Reconnecting (the default) and waiting for ready, the call waits readyTimeout, then fails naming the last failure.
    const retrying = new WsMsgpackClient({ url, connectTimeout: 2000, readyTimeout: 300, waitForReady: true });
    try {
      const err2 = await errorOf(retrying.send('ping', 1));
      expect(err2).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/not connected within 300 ms; last failure: cannot connect/) });
    } finally {
      await retrying.close();
    }
  });

  it('reconnects on the next call after the connection dropped', async () => {
    const svc = await startService({ controllers: [PingController] });
    try {
      const c = svc.client();
      const disconnects: number[] = [];
      c.on('disconnect', (info) => disconnects.push(info.code));
      expect(await first(c.send('ping', 1))).toBe(2);
      const firstSocket = c.unwrap<{ terminate(): void }>();
      firstSocket.terminate();
      await until(() => disconnects.length === 1, undefined, 'disconnect');
      expect(await first(c.send('ping', 2))).toBe(3);
      expect(c.unwrap()).not.toBe(firstSocket);
    } finally {
      await svc.close();
    }
  });

  it('emit() is hot and completes once the event is sent', async () => {
    const svc = await startService({ controllers: [PingController] });
    try {
      const c = svc.client();
      const emitted = c.emit('unknown-event', { a: 1 });
      await within(firstValueFrom(emitted.pipe(toArray(), take(1))));
      expect(svc.server.connectionCount).toBe(1);
    } finally {
      await svc.close();
    }
  });

  it('reports connection-level protocol errors from the server through on("error")', async () => {
    const svc = await startService({ controllers: [PingController] });
    try {
      const c = svc.client();
      const errors: Error[] = [];
      c.on('error', (e) => errors.push(e));
      await c.connect();
      // A text frame is a protocol violation the server reports with an id-0 ERROR.
      c.unwrap<{ send(data: string): void }>().send('hello');
      await until(() => errors.length === 1, undefined, 'error event');
      expect(errors[0]).toMatchObject({ code: 'PROTOCOL_ERROR' });
      expect(await first(c.send('ping', 5))).toBe(6);
    } finally {
      await svc.close();
    }
  });

  it("a connect() made during close() (from a 'disconnect' listener) owns the status: CONNECTING while its handshake is under way, then CONNECTED", async () => {
    const svc = await startService({ controllers: [PingController] });
    const client = svc.client({ keepAliveInterval: 0 });
    client.on('error', () => {});
    try {
      await client.connect();
      let reconnect = true;
      client.on('disconnect', () => {
        if (!reconnect) return;
        reconnect = false;
        void client.connect().catch(() => {});
      });
      const statuses: string[] = [];
      client.status.subscribe((s) => statuses.push(s));
      const closing = client.close();
      const whileHandshaking = statuses.at(-1); // not the DISCONNECTED of close(), emitted after the listener's connect()
      await closing;
      await until(() => statuses.at(-1) === WsMsgpackStatus.CONNECTED, WAIT_MS, 'reconnected');
      expect(whileHandshaking).toBe(WsMsgpackStatus.CONNECTING);
      expect(await first(client.send('ping', 1))).toBe(2);
    } finally {
      await svc.close();
    }
  });

  it('close() is idempotent and a closed client can connect again', async () => {
    const svc = await startService({ controllers: [PingController] });
    try {
      const c = svc.client();
      await c.close();
      expect(await first(c.send('ping', 1))).toBe(2);
      await c.close();
      await c.close();
      expect(await first(c.send('ping', 2))).toBe(3);
    } finally {
      await svc.close();
    }
  });
});

describe('WsMsgpackClient: events keep their order across the connection opening', () => {
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
  afterAll(() => svc.close());
  beforeEach(() => {
    events.length = 0;
  });
  const sent = (o: ReturnType<WsMsgpackClient['emit']>): Promise<unknown> => within(lastValueFrom(o, { defaultValue: undefined }));

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
      await sent(client.emit('log', 'queued'));
      await until(() => fromListener !== undefined);
      await fromListener;
      await until(() => events.length === 2);
      expect(events).toEqual(['queued', 'from listener']);
    } finally {
      await client.close();
    }
  });
});

describe('WsMsgpackClient: close() during the handshake, then connect()', () => {
  it('the cancelled attempt never opens: its connect() fails UNAVAILABLE, no orphaned server connection, no stray connect event', async () => {
    const held: ((ok: boolean) => void)[] = [];
    const own = await startService({ controllers: [PingController] }, { authenticate: () => new Promise<boolean>((resolve) => held.push(resolve)) });
    let serverConnections = 0;
    own.server.on('connection', () => serverConnections++);
    const client = own.client();
    const log: string[] = [];
    client.status.subscribe((s) => log.push(`status ${s}`));
    client.on('connect', () => log.push('connect event'));
    try {
      // Attempt A: the server holds its upgrade in authenticate().
      const a = client.connect().then(
        () => 'opened',
        (e: unknown) => `failed ${codeOf(e)}`,
      );
      await until(() => held.length === 1, WAIT_MS, 'upgrade A reaching authenticate()');
      log.push('-- close()');
      const closing = client.close();
      // Attempt B, while A is still held by the server.
      const b = client.connect();
      await until(() => held.length === 2, WAIT_MS, 'upgrade B reaching authenticate()');
      held[1]!(true);
      const connB = await within(b, WAIT_MS, 'connect() B');
      expect(connB.isClosed).toBe(false);
      log.push('-- A authorized');
      held[0]!(true);
      const outcomeA = await within(a, WAIT_MS, 'connect() A');
      await within(closing, WAIT_MS, 'the first close()');
      log.push('-- final close()');
      await client.close();
      // Nothing may stay open on the server once the client has closed.
      await until(() => own.server.connectionCount === 0, WAIT_MS, 'no server-side connection left after client.close()');
      await holds(() => own.server.connectionCount === 0 && serverConnections === 1, 'one server connection ever (B), none left open');
      // The cancelled attempt's connect() failed; it never opened, so no 'connected' or 'connect' came from it.
      expect(outcomeA).toBe('failed UNAVAILABLE');
      expect(log).toEqual([
        'status connecting',
        '-- close()',
        'status closed',
        'status connecting',
        'status connected',
        'connect event',
        '-- A authorized',
        '-- final close()',
        'status closed',
      ]);
    } finally {
      for (const resolve of held) resolve(false);
      await own.close();
    }
  });
});

describe("client: the Connection cannot be made in the socket's open event (a connection factory that throws, on a real socket)", () => {
  it('connect() rejects with that error, the socket is terminated, and the status ends DISCONNECTED', async () => {
    const server = await RawServer.start();
    const statuses: string[] = [];
    const core = new ClientCore(
      { url: server.url, keepAliveInterval: 0, reconnect: false }, // one attempt: it fails at once
      { socketSupport: WS_SOCKET_SUPPORT },
      {
        open: (url, _prepared, adopt) => startHandshake(url, {}, adopt),
        connection: () => {
          throw new Error('boom in the connection factory');
        },
        attach: () => {},
        status: (s) => statuses.push(s),
        connected: () => {},
        disconnected: () => {},
        report: () => {},
      },
      'TestClient',
    );
    try {
      const rejection = await within(
        core.connect().then(
          () => undefined,
          (e: unknown) => e,
        ),
        WAIT_MS,
        'connect()',
      );
      await until(() => server.connections === 1 && server.sockets[0]!.readyState === WebSocket.CLOSED, WAIT_MS, 'server side closed');
      expect(String(rejection)).toContain('boom in the connection factory');
      expect(statuses.at(-1)).toBe(WsMsgpackStatus.DISCONNECTED);
    } finally {
      await core.close();
      await server.close();
    }
  });
});

describe("WsMsgpackServer 'error' event: what goes wrong outside a call is reported, the server goes on", () => {
  it("a throwing 'connection' listener is reported through 'error' and does not corrupt the connection table", async () => {
    const own = await startService({ controllers: [PingController] });
    const errors: Error[] = [];
    own.server.on('error', (e) => errors.push(e));
    own.server.on('connection', (_ws, req) => {
      if (req.url === '/boom') throw new Error('connection listener boom');
    });
    try {
      const bad = own.client({ url: `${own.url}/boom` });
      expect(await first(bad.send('ping', 1))).toBe(2);
      // Other clients keep working meanwhile.
      const good = own.client();
      expect(await first(good.send('ping', 2))).toBe(3);
      expect(own.server.connectionCount).toBe(2);
      await bad.close();
      await good.close();
      await until(() => own.server.connectionCount === 0, WAIT_MS, 'connectionCount back to 0 after the clients closed');
      expect(errors).toHaveLength(1);
      expect(errors[0]!.message).toMatch(/connection listener boom/);
      // And after it left.
      const later = own.client();
      expect(await first(later.send('ping', 3))).toBe(4);
      await later.close();
      await until(() => own.server.connectionCount === 0, WAIT_MS, 'connectionCount back to 0');
    } finally {
      await own.close();
    }
  });

  it('a throwing authenticate() is reported through on("error") and the upgrade is refused with 500', async () => {
    const own = await startService(
      { controllers: [PingController] },
      {
        authenticate: () => {
          throw new Error('auth backend down');
        },
      },
    );
    const errors: Error[] = [];
    own.server.on('error', (e) => errors.push(e));
    try {
      const err = await errorOf(own.client().send('ping', 1));
      expect(err).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/500/) });
      await until(() => errors.length === 1, WAIT_MS, "authenticate()'s error reaching on('error')");
      expect(errors[0]!.message).toMatch(/auth backend down/);
      expect(own.server.connectionCount).toBe(0);
    } finally {
      await own.close();
    }
  });

  it("a peer's invalid frame reaches on('error') as a WsMsgpackError with code PROTOCOL_ERROR; the connection stays usable", async () => {
    const own = await startService({ controllers: [PingController] });
    const errors: Error[] = [];
    own.server.on('error', (e) => errors.push(e));
    const peer = await RawPeer.open(own.url);
    try {
      peer.sendBytes(Uint8Array.of(0xc1)); // 0xc1: a byte msgpack never uses
      const reply = await peer.next((f) => f[0] === 5 && f[1] === 0, 'connection-level ERROR');
      expect(reply[2]).toBe('PROTOCOL_ERROR');
      await until(() => errors.length === 1, WAIT_MS, "the violation reaching on('error')");
      expect(errors[0]).toBeInstanceOf(WsMsgpackError);
      expect(codeOf(errors[0])).toBe('PROTOCOL_ERROR');
      peer.send([1, 1, 'ping', 41]);
      expect(await peer.next((f) => f[1] === 1, 'ping answer')).toEqual([4, 1, 42]);
    } finally {
      peer.close();
      await own.close();
    }
  });

  it("a throwing 'disconnect' listener is reported through on('error'); the server goes on", async () => {
    const own = await startService({ controllers: [PingController] });
    const errors: Error[] = [];
    own.server.on('error', (e) => errors.push(e));
    own.server.on('disconnect', () => {
      throw new Error('disconnect listener boom');
    });
    try {
      const c = own.client();
      expect(await first(c.send('ping', 1))).toBe(2);
      await c.close();
      await until(() => errors.length === 1, WAIT_MS, "the listener's error reaching on('error')");
      expect(errors[0]!.message).toMatch(/disconnect listener boom/);
      expect(own.server.connectionCount).toBe(0);
      const d = own.client();
      expect(await first(d.send('ping', 2))).toBe(3);
    } finally {
      await own.close();
    }
  });
});

describe('WsMsgpackClient close() races (against a peer slow to finish the closing handshake)', () => {
  let server: RawServer;
  /** The next connection's peer stops reading, so its closing handshake never finishes on its own. */
  let slowNext = true;
  beforeAll(async () => {
    server = await RawServer.start({
      onConnection: (ws) => {
        if (!slowNext) return;
        slowNext = false;
        (ws as unknown as { _socket: { pause(): void } })._socket.pause();
      },
    });
  });
  afterAll(() => server.close());

  it('close() then connect(): the status ends CONNECTED, not the late DISCONNECTED of the old close()', async () => {
    slowNext = true;
    const client = new WsMsgpackClient({ url: server.url, keepAliveInterval: 0 });
    client.on('error', () => {});
    const statuses: string[] = [];
    client.status.subscribe((s) => statuses.push(s));
    await client.connect();
    const closing = client.close(); // not awaited: reconnect right away
    await client.connect();
    await within(closing, WAIT_MS, 'close');
    expect((client.unwrap() as WebSocket).readyState).toBe(WebSocket.OPEN); // the second connection is open...
    expect(statuses.at(-1)).toBe(WsMsgpackStatus.CONNECTED); // ...and the status says so
    await client.close();
  });

  it('a second close() while the first waits resolves only once the socket has closed', async () => {
    slowNext = true;
    const client = new WsMsgpackClient({ url: server.url, keepAliveInterval: 0 });
    client.on('error', () => {});
    await client.connect();
    const ws = client.unwrap() as WebSocket;
    const closing = client.close();
    await client.close(); // documented: "Resolves once the socket has closed"
    const stateAfterSecond = ws.readyState;
    await closing;
    expect(stateAfterSecond).toBe(WebSocket.CLOSED);
  });
});

describe("WsMsgpackClient: what a server sends right after the handshake reaches the client's 'error' event", () => {
  it.each([
    ['20 ms after the handshake', 20],
    ['at once (with the handshake)', 0],
  ])("a connection-level ERROR sent %s is not lost: it is reported before the answer to the client's first call", async (_what, delay) => {
    // The server answers a call only once its ERROR is out: the answer comes after it on the socket.
    const server = await RawServer.start({
      onConnection: (ws) => {
        const frame = encode([5, 0, 'PROTOCOL_ERROR', 'hello from the server']);
        const errorSent = new Promise<void>((resolve) => {
          const send = (): void => {
            ws.send(frame);
            resolve();
          };
          if (delay) setTimeout(send, delay);
          else send();
        });
        ws.on('message', (data: Buffer) => {
          const f = decode(data) as unknown[];
          if (f[0] === 1) void errorSent.then(() => ws.send(encode([4, f[1], 'ok'])));
        });
      },
    });
    try {
      const outcomes: string[] = [];
      for (let i = 0; i < 20; i++) {
        const client = new WsMsgpackClient({ url: server.url, keepAliveInterval: 0 });
        const errors: Error[] = [];
        client.on('error', (e) => errors.push(e));
        await client.connect();
        expect(await first(client.send('x', null))).toBe('ok');
        outcomes.push(errors.some((e) => e.message.includes('hello from the server')) ? 'seen' : 'lost');
        await client.close();
      }
      expect(outcomes).toEqual(Array(20).fill('seen'));
    } finally {
      await server.close();
    }
  });

  it("a WebSocket error (a text message that is not UTF-8) reaches 'error' instead of being thrown from the socket", async () => {
    // The client's ws emits 'error' for it (and closes with 1007).
    const server = await RawServer.start({ onConnection: (ws) => ws.send(Buffer.from([0xff, 0xfe]), { binary: false }) });
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown): void => {
      uncaught.push(e);
    };
    process.on('uncaughtException', onUncaught);
    const errors: Error[] = [];
    const client = new WsMsgpackClient({ url: server.url, keepAliveInterval: 0 });
    client.on('error', (e) => errors.push(e));
    try {
      await client.connect().catch(() => {});
      await until(() => errors.length > 0, WAIT_MS, "the client's 'error' event");
    } finally {
      process.off('uncaughtException', onUncaught);
      await client.close();
      await server.close();
    }
    expect({ uncaught: uncaught.map(String), errors: errors.length > 0 }).toEqual({ uncaught: [], errors: true });
  });
});
