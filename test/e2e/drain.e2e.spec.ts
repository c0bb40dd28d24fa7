import { jest } from '@jest/globals';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { randomBytes } from 'node:crypto';
import type { Server as HttpServer } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { finalize, interval, NEVER, type Observable } from 'rxjs';
import { WsMsgpackServer, WsSignal } from '../../src/index.js';
import { errorOf, first, startClientApp, startService, until, WAIT_MS, within } from '../support/helpers.js';
import { RawPeer } from '../support/raw-peer.js';
import WebSocket from 'ws';
import { codeOf, gate, holds, newTag, Probes, type Gate } from '../support/streams.js';

/** Opens plain sockets to `url` until one is refused (the server has begun to close); resolves with the refusal. */
async function refusedOnceClosing(url: string): Promise<string> {
  for (const deadline = Date.now() + WAIT_MS; Date.now() < deadline;) {
    const outcome = await new Promise<string | undefined>((resolve) => {
      const ws = new WebSocket(url, ['wsmp.v1']);
      ws.once('open', () => (ws.terminate(), resolve(undefined)));
      ws.once('error', (e) => resolve(e.message));
    });
    if (outcome !== undefined) return outcome;
  }
  throw new Error('new connections were still accepted');
}

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

const probes = new Probes();
const release = { gate: gate() };

@Controller()
class DrainController {
  /** Finishes when the test lets it. */
  @MessagePattern('work')
  async work(@Payload() tag: string): Promise<string> {
    probes.get(tag).started++;
    await release.gate.promise;
    probes.get(tag).completed++;
    return `done ${tag}`;
  }

  @MessagePattern('endless')
  endless(@Payload() tag: string, @WsSignal() signal: AbortSignal): Observable<number> {
    const p = probes.get(tag).watch(signal);
    p.started++;
    return interval(5).pipe(finalize(() => p.finalized++));
  }

  @MessagePattern('echo')
  echo(@Payload() v: unknown): unknown {
    return v;
  }
}

describe('graceful shutdown: close() drains', () => {
  it('a call under way finishes during the drain; close() resolves after it', async () => {
    release.gate = gate();
    const svc = await startService({ controllers: [DrainController] }, { drainTimeout: 4000 });
    const client = svc.client({ reconnect: false });
    try {
      const tag = newTag('work');
      const answer = first(client.send('work', tag));
      await until(() => probes.get(tag).started === 1, WAIT_MS, 'handler running');
      let closed = false;
      const closing = svc.app.close().then(() => (closed = true));
      // The drain is under way once new connections are refused; the held call's connection stays.
      await refusedOnceClosing(svc.url);
      expect({ connections: svc.server.connectionCount, closed }).toEqual({ connections: 1, closed: false });
      release.gate.open();
      expect(await answer).toBe(`done ${tag}`);
      await within(closing, WAIT_MS, 'close after the drain');
    } finally {
      await client.close();
    }
  });

  it('what is still running after drainTimeout is cancelled: finalize runs, the caller gets UNAVAILABLE', async () => {
    const svc = await startService({ controllers: [DrainController] }, { drainTimeout: 100 });
    const client = svc.client({ reconnect: false });
    try {
      const tag = newTag('endless');
      const call = errorOf(client.send('endless', tag));
      await until(() => probes.get(tag).started === 1, WAIT_MS, 'stream running');
      await within(svc.app.close(), WAIT_MS, 'close');
      expect(codeOf(await call)).toBe('UNAVAILABLE');
      expect(probes.get(tag).finalized).toBe(1);
      expect(probes.get(tag).abortCode).toBe('UNAVAILABLE');
    } finally {
      await client.close();
    }
  });

  it('drainTimeout 0 cancels at once', async () => {
    release.gate = gate();
    const svc = await startService({ controllers: [DrainController] }, { drainTimeout: 0 });
    const client = svc.client({ reconnect: false });
    try {
      const tag = newTag('work0');
      const call = errorOf(client.send('work', tag));
      await until(() => probes.get(tag).started === 1, WAIT_MS, 'handler running');
      await within(svc.app.close(), WAIT_MS, 'close');
      expect(codeOf(await call)).toBe('UNAVAILABLE');
      expect(probes.get(tag).completed).toBe(0);
    } finally {
      release.gate.open();
      await client.close();
    }
  });

  it('on the wire: GOING_AWAY first (a connection-level ERROR), new REQUESTs refused with UNAVAILABLE, then close 1001', async () => {
    release.gate = gate();
    const svc = await startService({ controllers: [DrainController] }, { drainTimeout: 4000 });
    const peer = await RawPeer.open(svc.url);
    try {
      const tag = newTag('wire');
      peer.send([1, 1, 'work', tag]);
      await until(() => probes.get(tag).started === 1, WAIT_MS, 'handler running');
      const closing = svc.app.close();
      expect(await peer.next((f) => f[0] === 5 && f[1] === 0)).toEqual([5, 0, 'GOING_AWAY', 'server shutting down', { drainTimeout: 4000 }]);
      peer.send([1, 3, 'echo', 'late']);
      expect(await peer.next((f) => f[1] === 3)).toEqual([5, 3, 'UNAVAILABLE', 'the connection is going away: server shutting down']);
      release.gate.open();
      expect(await peer.next((f) => f[1] === 1)).toEqual([4, 1, `done ${tag}`]);
      expect(await peer.whenClosed()).toEqual({ code: 1001, reason: 'server shutting down' });
      await within(closing, WAIT_MS, 'close');
    } finally {
      peer.close();
    }
  });

  it('a client told GOING_AWAY starts new calls on another replica at once, while the old call finishes', async () => {
    release.gate = gate();
    const a = await startService({ controllers: [DrainController] }, { drainTimeout: 4000 });
    const b = await startService({ controllers: [DrainController] });
    const client = a.client({ url: [a.url, b.url] });
    try {
      const tag = newTag('replica');
      const old = first(client.send('work', tag));
      await until(() => probes.get(tag).started === 1, WAIT_MS, 'call on a');
      const closing = a.app.close();
      await until(() => b.server.connectionCount === 1, WAIT_MS, 'the client opened b');
      expect(await first(client.send('echo', 'on b'))).toBe('on b');
      expect(a.server.connectionCount).toBe(1); // a is still draining its call
      release.gate.open();
      expect(await old).toBe(`done ${tag}`);
      await within(closing, WAIT_MS, 'a closed');
    } finally {
      await client.close();
      await b.close();
    }
  });
});

describe('close() answers the upgrades still in authenticate() at once (503), not at handshakeTimeout', () => {
  it.each([
    ['handshakeTimeout 60 s', 60_000],
    ['handshakeTimeout 0 (none)', 0],
  ])('standalone, %s: close() resolves, the upgrade gets 503, the late identity is ignored', async (_title, handshakeTimeout) => {
    const auth = parkedAuthenticate();
    const errors: Error[] = [];
    const svc = await startService({ controllers: [DrainController] }, { authenticate: auth.authenticate, handshakeTimeout });
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

  it('with httpServer: app.close() (which closes the HTTP server first) resolves; the upgrade gets 503', async () => {
    const auth = parkedAuthenticate();
    @Module({ controllers: [DrainController] })
    class HttpAppModule {}
    const app = await NestFactory.create(HttpAppModule, { logger: false });
    const server = new WsMsgpackServer({ httpServer: app.getHttpServer() as HttpServer, path: '/rpc', authenticate: auth.authenticate, handshakeTimeout: 60_000 });
    app.connectMicroservice({ strategy: server });
    await within(app.startAllMicroservices());
    await within(app.listen(0, '127.0.0.1'));
    const { port } = (app.getHttpServer() as HttpServer).address() as { port: number };
    const { socket, answer } = rawUpgrade(port, '/rpc');
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

describe("the drain waits for the server's own calls to its clients too (PROTOCOL.md 15.1: both ways)", () => {
  const agentGate = gate();
  let agentStarted = 0;
  @Controller()
  class AgentCtl {
    @MessagePattern('client.slow')
    async slow(): Promise<string> {
      agentStarted++;
      await agentGate.promise;
      return 'client done';
    }
  }

  it('a peer.send() under way finishes during the drain; a new one fails with UNAVAILABLE at once; close() resolves after the answer', async () => {
    const svc = await startService({ controllers: [DrainController] }, { drainTimeout: 60_000 });
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
      agentGate.open();
      expect(await within(result, WAIT_MS, 'the answer')).toBe('client done');
      await within(closing, WAIT_MS, 'close() after the last call settled, long before drainTimeout');
      expect(agentStarted).toBe(1);
    } finally {
      agentGate.open();
      await agent.close();
    }
  });
});

describe('drainTimeout and closeTimeout: Infinity means no limit (not ~1 ms)', () => {
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
    const svc = await startService({ controllers: [DrainController] }, closeTimeout === undefined ? {} : { closeTimeout });
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
