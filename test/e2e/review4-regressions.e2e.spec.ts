import { jest } from '@jest/globals';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { randomBytes } from 'node:crypto';
import type { Server as HttpServer } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { NEVER, Observable, timer } from 'rxjs';
import { startCallKeepAlive } from '../../src/connection/keepalive.js';
import { WsMsgpackServer, WsMsgpackStatus, WsSignal } from '../../src/index.js';
import { errorOf, first, startClientApp, startService, until, WAIT_MS, within } from '../support/helpers.js';
import { RawPeer } from '../support/raw-peer.js';
import { codeOf, gate, holds, type Gate } from '../support/streams.js';

/**
 * Regression tests from a review of shutdown and time options: each failed on c6e8653.
 * - a pending authenticate() held close() until handshakeTimeout (forever with 0);
 * - close() during listen()'s bind left the HTTP server listening and reported 'connected' last;
 * - the drain did not wait for the server's own calls to its clients (PROTOCOL.md 15.1: both ways);
 * - Infinity for a time option acted as ~1 ms (setTimeout overflow); time options unchecked.
 */

/** Sends a WebSocket upgrade request by hand; resolves with the raw answer once the server closes the socket. */
function rawUpgrade(port: number, path = '/'): { socket: Socket; answer: Promise<string> } {
  const socket = netConnect(port, '127.0.0.1');
  socket.on('error', () => {});
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (text += d));
  socket.once('connect', () =>
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Protocol: wsmp.v1\r\n\r\n`,
    ),
  );
  const answer = new Promise<string>((resolve) => socket.once('close', () => resolve(text)));
  return { socket, answer };
}

/** An authenticate() that waits for the test: each call parks on a gate, which opens with an identity. */
function parkedAuthenticate(): { authenticate: () => Promise<unknown>; calls: Gate[] } {
  const calls: Gate[] = [];
  return {
    calls,
    authenticate: async () => {
      const g = gate();
      calls.push(g);
      await g.promise;
      return { name: 'late' };
    },
  };
}

@Controller()
class Echo {
  @MessagePattern('echo')
  echo(@Payload() v: unknown): unknown {
    return v;
  }
}

// ---------------------------------------------------------------------------------------------
describe('close() answers the upgrades still in authenticate() at once (503), not at handshakeTimeout', () => {
  it.each([
    ['handshakeTimeout 60 s', 60_000],
    ['handshakeTimeout 0 (none)', 0],
  ])('standalone, %s: close() resolves at once, the upgrade gets 503, the late identity is ignored', async (_title, handshakeTimeout) => {
    const auth = parkedAuthenticate();
    const errors: Error[] = [];
    const svc = await startService({ controllers: [Echo] }, { authenticate: auth.authenticate, handshakeTimeout });
    svc.server.on('error', (e) => errors.push(e));
    const { socket, answer } = rawUpgrade(svc.server.address()!.port);
    try {
      await until(() => auth.calls.length === 1, WAIT_MS, 'authenticate running');
      await within(svc.server.close(), WAIT_MS, 'server.close() with an upgrade in authenticate');
      expect(await within(answer, WAIT_MS, 'the upgrade answered')).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n[\s\S]*\r\n\r\nthe server is shutting down$/);
      auth.calls[0]!.open(); // authenticate answers after all: nothing happens
      await holds(() => svc.server.connectionCount === 0 && errors.length === 0, 'no connection, nothing reported', 10);
    } finally {
      auth.calls.forEach((g) => g.open());
      socket.destroy();
      await svc.close();
    }
  });

  it('with httpServer: app.close() (which closes the HTTP server first) resolves at once; the upgrade gets 503', async () => {
    const auth = parkedAuthenticate();
    @Module({ controllers: [Echo] })
    class HttpAppModule {}
    const app = await NestFactory.create(HttpAppModule, { logger: false });
    const server = new WsMsgpackServer({ httpServer: app.getHttpServer() as HttpServer, path: '/rpc', authenticate: auth.authenticate, handshakeTimeout: 60_000 });
    app.connectMicroservice({ strategy: server });
    await within(app.startAllMicroservices());
    await within(app.listen(0, '127.0.0.1'));
    const port = (app.getHttpServer() as HttpServer).address() as { port: number };
    const { socket, answer } = rawUpgrade(port.port, '/rpc');
    try {
      await until(() => auth.calls.length === 1, WAIT_MS, 'authenticate running');
      await within(app.close(), WAIT_MS, 'app.close() with an upgrade in authenticate');
      expect(await within(answer, WAIT_MS, 'the upgrade answered')).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n[\s\S]*the server is shutting down$/);
      auth.calls[0]!.open();
      await holds(() => server.connectionCount === 0, 'no connection', 10);
    } finally {
      auth.calls.forEach((g) => g.open());
      socket.destroy();
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('close() while listen() is still binding', () => {
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

// ---------------------------------------------------------------------------------------------
describe("the drain waits for the server's own calls to its clients too (PROTOCOL.md 15.1: both ways)", () => {
  const agentGate = { current: gate() };
  let agentStarted = 0;

  @Controller()
  class AgentCtl {
    @MessagePattern('client.slow')
    async slow(): Promise<string> {
      agentStarted++;
      await agentGate.current.promise;
      return 'client done';
    }
  }

  it('a peer.send() under way finishes during the drain; a new one fails with UNAVAILABLE at once; close() resolves after the answer', async () => {
    agentGate.current = gate();
    agentStarted = 0;
    const svc = await startService({ controllers: [Echo] }, { drainTimeout: 60_000 });
    const agent = await startClientApp({ controllers: [AgentCtl] }, { url: svc.url, reconnect: false });
    agent.client.on('error', () => {});
    const told = new Promise<void>((resolve) => agent.client.on('disconnect', (info) => info.reason === 'the server is going away' && resolve()));
    try {
      await until(() => svc.server.peers.size === 1, WAIT_MS, 'peer');
      const peer = [...svc.server.peers][0]!;
      const result = first(peer.send('client.slow', null)).catch((e: unknown) => e);
      await until(() => agentStarted === 1, WAIT_MS, 'the client handler running');
      let closed = false;
      const closing = svc.app.close().then(() => (closed = true));
      await within(told, WAIT_MS, 'GOING_AWAY reached the client');
      // Calls the server starts during the drain fail at once: it starts no new calls (15.1, step 2).
      const late = await errorOf(peer.send('client.slow', null));
      expect([codeOf(late), (late as Error).message]).toEqual(['UNAVAILABLE', expect.stringContaining('going away')]);
      expect(closed).toBe(false);
      agentGate.current.open();
      expect(await within(result, WAIT_MS, 'the answer')).toBe('client done');
      await within(closing, WAIT_MS, 'close() after the last call settled, long before drainTimeout');
      expect(agentStarted).toBe(1);
    } finally {
      agentGate.current.open();
      await agent.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('Infinity for a time option means no limit (not ~1 ms), and bad values are refused', () => {
  it('keepAliveTimeout: Infinity: pings keep going every interval, a peer that never answers is not cut', async () => {
    const server = new WsMsgpackServer({ port: 0, keepAliveInterval: 20, keepAliveTimeout: Infinity });
    server.on('error', () => {});
    await new Promise<void>((r) => server.listen(() => r()));
    const raw = await RawPeer.open(`ws://127.0.0.1:${server.address()!.port}`, ['wsmp.v1'], { autoPong: false });
    try {
      let pings = 0;
      await within(
        new Promise<void>((resolve, reject) => {
          raw.ws.on('ping', () => ++pings === 3 && resolve());
          raw.ws.once('close', () => reject(new Error(`cut after ${pings} ping(s)`)));
        }),
        WAIT_MS,
        'three unanswered pings',
      );
      expect(raw.closed).toBeUndefined();
    } finally {
      raw.close();
      await within(server.close());
    }
  });

  it('keep-alive calls (sockets that cannot ping) with keepAliveTimeout: Infinity never cut the connection', async () => {
    let pings = 0;
    let cut: string | undefined;
    const stop = startCallKeepAlive(
      () => {
        pings++;
        return pings === 1 ? timerAnswer(30) : timerAnswer(1); // the first answer is slow, the others quick
      },
      (reason) => (cut = reason),
      5,
      Infinity,
    );
    try {
      await until(() => pings >= 3 || cut !== undefined, WAIT_MS, 'three keep-alive calls');
      expect(cut).toBeUndefined();
    } finally {
      stop();
    }
    // And an interval of Infinity makes none.
    let calls = 0;
    const off = startCallKeepAlive(
      () => (calls++, NEVER),
      () => {},
      Infinity,
      100,
    );
    await holds(() => calls === 0, 'no keep-alive call');
    off();
  });

  it('drainTimeout: Infinity: a call under way is not cancelled; close() resolves once it has finished', async () => {
    const work = gate();
    let started = 0;
    let aborted = false;
    @Controller()
    class Slow {
      @MessagePattern('slow')
      async slow(@WsSignal() signal: AbortSignal): Promise<string> {
        started++;
        signal.addEventListener('abort', () => (aborted = true));
        await work.promise;
        return 'done';
      }
    }
    const svc = await startService({ controllers: [Slow] }, { drainTimeout: Infinity });
    const client = svc.client({ reconnect: false });
    client.on('error', () => {});
    const told = new Promise<void>((resolve) => client.on('disconnect', (info) => info.reason === 'the server is going away' && resolve()));
    try {
      const answer = first(client.send('slow', null)).catch((e: unknown) => e);
      await until(() => started === 1, WAIT_MS, 'handler running');
      let closed = false;
      const closing = svc.server.close().then(() => (closed = true));
      await within(told, WAIT_MS, 'GOING_AWAY reached the client');
      await holds(() => !aborted && !closed, 'the call keeps running, close() keeps waiting');
      work.open();
      expect(await within(answer, WAIT_MS, 'the answer')).toBe('done');
      await within(closing, WAIT_MS, 'close() after the call');
    } finally {
      work.open();
      await client.close();
      await svc.close();
    }
  });

  it('drainTimeout: Infinity: a client that leaves during the drain ends it (close() does not wait forever)', async () => {
    let started = 0;
    @Controller()
    class Forever {
      @MessagePattern('forever')
      forever(): Observable<never> {
        started++;
        return NEVER; // ends only when the call does
      }
    }
    const svc = await startService({ controllers: [Forever] }, { drainTimeout: Infinity });
    const client = svc.client({ reconnect: false });
    client.on('error', () => {});
    const told = new Promise<void>((resolve) => client.on('disconnect', (info) => info.reason === 'the server is going away' && resolve()));
    try {
      const call = errorOf(client.send('forever', null)).catch((e: unknown) => e);
      await until(() => started === 1, WAIT_MS, 'handler running');
      const closing = svc.server.close();
      await within(told, WAIT_MS, 'GOING_AWAY reached the client');
      await client.close();
      expect(codeOf(await call)).toBe('UNAVAILABLE');
      await within(closing, WAIT_MS, 'close() once the only client left');
    } finally {
      await client.close();
      await svc.close();
    }
  });

  // Fake clocks once the connection is open (the sockets stay real): 5 s of the server's time pass
  // at once, past the default closeTimeout (2 s), so a silent fallback to it would cut the peer.
  it.each([
    ['Infinity: close() does not cut a peer that has not finished the closing handshake, past the 2 s default', Infinity, false],
    ['the default (2 s): the same peer is cut and close() ends (the check sees the cut Infinity must not make)', undefined, true],
  ])('closeTimeout %s', async (_what, closeTimeout, cut) => {
    const svc = await startService({ controllers: [Echo] }, closeTimeout === undefined ? {} : { closeTimeout });
    const { socket, answer } = rawUpgrade(svc.server.address()!.port);
    const upgraded = new Promise<void>((resolve) => socket.on('data', (d: string) => d.startsWith('HTTP/1.1 101') && resolve()));
    try {
      await within(upgraded, WAIT_MS, 'upgraded');
      await until(() => svc.server.connectionCount === 1, WAIT_MS, 'connection open');
      let socketClosed = false;
      socket.once('close', () => (socketClosed = true));
      let closed = false;
      jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask', 'hrtime', 'performance', 'Date'] });
      const closing = svc.server.close().then(() => (closed = true));
      // The raw socket never answers the server's close frame. 5 s in 100 ms steps, each followed by
      // turns of the event loop (close() awaits its drain before arming its timer).
      for (let i = 0; i < 50; i++) {
        jest.advanceTimersByTime(100);
        for (let j = 0; j < 5; j++) await new Promise((r) => setImmediate(r));
      }
      jest.useRealTimers();
      if (cut) await within(closing, WAIT_MS, 'close() after closeTimeout');
      expect({ socketClosed: cut ? await within(answer, WAIT_MS, 'socket cut').then(() => socketClosed) : socketClosed, closed }).toEqual({ socketClosed: cut, closed: cut });
      socket.destroy();
      await within(answer, WAIT_MS, 'socket closed');
      await within(closing, WAIT_MS, 'close() once the peer is gone');
    } finally {
      jest.useRealTimers();
      socket.destroy();
      await svc.close();
    }
  });
});

/** An answer to a keep-alive call after `ms` (the peer's latency in this scenario, not a test wait). */
function timerAnswer(ms: number): Observable<unknown> {
  return timer(ms);
}
