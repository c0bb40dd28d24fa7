/**
 * Regression tests from a second review (of the fixes in 2825795 / e14b668): each failed on
 * e14b668, a bug those fixes introduced or left half-fixed.
 */
import { Controller } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { createServer, type Server, type Socket } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { BufferBudget, FrameQueue } from '../../src/connection/frame-queue.js';
import { WsMsgpackClient, WsMsgpackStatus } from '../../src/index.js';
import { startService, until, within, type TestService } from '../support/helpers.js';

describe('FrameQueue: zero-length frame', () => {
  it('a zero-length frame pushed into an empty queue can be shifted (worked before 2825795)', () => {
    const q = new FrameQueue(new BufferBudget(Infinity));
    q.push(new Uint8Array(0));
    expect(q.length).toBe(1);
    expect(() => q.shift()).not.toThrow(); // throws TypeError: head is undefined (no slab was made)
  });
});

describe('client.iterate(): return() while the connection is still being opened', () => {
  let tcp: Server;
  const held: Socket[] = [];
  let url = '';
  beforeAll(async () => {
    // Accepts TCP, never answers the WebSocket upgrade: the handshake stays pending.
    tcp = createServer((s) => held.push(s));
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', () => r()));
    url = `ws://127.0.0.1:${(tcp.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    for (const s of held) s.destroy();
    await new Promise<void>((r) => tcp.close(() => r()));
  });

  it('return() settles the pending next() at once (done), as its comment says', async () => {
    const client = new WsMsgpackClient({ url, keepAliveInterval: 0, connectTimeout: 3000 });
    client.on('error', () => {});
    const it = client.iterate('x', null);
    const pending = it.next();
    let outcome: string | undefined;
    pending.then(
      (r) => (outcome = `resolved ${JSON.stringify(r)}`),
      (e: unknown) => (outcome = `rejected ${String(e)}`),
    );
    await within(it.return!(), 500, 'return()');
    await within(pending, 500, 'the pending next()');
    const afterReturn = outcome;
    await client.close(); // the handshake is called off: a next() still waiting on it would now reject
    expect({ afterReturn, finally: outcome }).toEqual({
      afterReturn: 'resolved {"done":true}',
      finally: 'resolved {"done":true}',
    });
  });
});

describe('client.iterate(): a failed connect()', () => {
  it('next() after a next() that failed to connect reports done (async-generator semantics, as before 2825795)', async () => {
    const client = new WsMsgpackClient({ url: 'ws://127.0.0.1:1', keepAliveInterval: 0 });
    client.on('error', () => {});
    const it = client.iterate('x', null);
    await expect(it.next()).rejects.toThrow();
    await expect(it.next()).resolves.toEqual({ value: undefined, done: true }); // rejects again: `starting` is cached
  });
});

describe('client: adopt() throws in the open event', () => {
  let wss: WebSocketServer;
  let url = '';
  const serverSide: WebSocket[] = [];
  beforeAll(async () => {
    wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'wsmp.v1' });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    url = `ws://127.0.0.1:${(wss.address() as { port: number }).port}`;
    wss.on('connection', (ws) => serverSide.push(ws));
  });
  afterAll(async () => {
    for (const ws of wss.clients) ws.terminate();
    await new Promise<void>((r) => wss.close(() => r()));
  });

  it('connect() rejects, the socket is terminated, and the status ends DISCONNECTED', async () => {
    // Make `new Connection(ws)` throw inside adopt(): bindSocket sets ws.binaryType first.
    const proto = WebSocket.prototype as unknown as object;
    const original = Object.getOwnPropertyDescriptor(proto, 'binaryType')!;
    let armed = true;
    Object.defineProperty(proto, 'binaryType', {
      ...original,
      set(this: WebSocket, v: string) {
        if (armed) throw new Error('boom in Connection constructor');
        original.set!.call(this, v);
      },
    });
    const client = new WsMsgpackClient({ url, keepAliveInterval: 0, reconnect: false }); // one attempt: it fails at once
    client.on('error', () => {});
    const statuses: string[] = [];
    client.status.subscribe((s) => statuses.push(s));
    let rejection: unknown;
    try {
      await client.connect().catch((e: unknown) => (rejection = e));
    } finally {
      armed = false;
      Object.defineProperty(proto, 'binaryType', original);
    }
    await until(() => serverSide.length === 1 && serverSide[0]!.readyState === WebSocket.CLOSED, 2000, 'server side closed');
    expect(String(rejection)).toContain('boom');
    expect(statuses[statuses.length - 1]).toBe(WsMsgpackStatus.DISCONNECTED); // stays CONNECTING
    await client.close();
  });
});

describe('client close(): a connect() made synchronously during close() (disconnect listener, retry())', () => {
  let svc: TestService;
  @Controller()
  class PingController {
    @MessagePattern('ping')
    ping() {
      return 'pong';
    }
  }
  beforeAll(async () => {
    svc = await startService({ controllers: [PingController] });
  });
  afterAll(() => svc.close());

  it('owns the status: CONNECTING while its handshake is under way, not the DISCONNECTED of close()', async () => {
    const client = new WsMsgpackClient({ url: svc.url, keepAliveInterval: 0 });
    client.on('error', () => {});
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
    const whileHandshaking = statuses[statuses.length - 1];
    await closing;
    await until(() => statuses[statuses.length - 1] === WsMsgpackStatus.CONNECTED, 2000, 'reconnected');
    await client.close();
    expect(whileHandshaking).toBe(WsMsgpackStatus.CONNECTING); // is DISCONNECTED (emitted after the listener's connect())
  });
});
