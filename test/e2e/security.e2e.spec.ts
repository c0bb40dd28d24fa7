import { Controller, ForbiddenException, Injectable, Module, UseGuards, type CanActivate, type ExecutionContext, type LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, MessagePattern, Payload } from '@nestjs/microservices';
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { connect as netConnect } from 'node:net';
import {
  CloseCode,
  WS_PEER_CONNECTED,
  WsEventPattern,
  WsMsgpackClient,
  WsMsgpackContext,
  WsMsgpackErrorCode,
  WsMsgpackServer,
  WsMsgpackUpgradeError,
  WsPeer,
  WsUser,
  type WsMsgpackPeer,
} from '../../src/index.js';
import { errorOf, first, startService, until, WAIT_MS, within, type TestService } from '../support/helpers.js';
import { RawPeer } from '../support/raw-peer.js';
import { gate, type Gate } from '../support/streams.js';

interface User {
  name: string;
  role: 'admin' | 'user';
}

/** What the handlers saw, in order. */
const seen: string[] = [];

@Injectable()
class AdminOnly implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    return context.switchToRpc().getContext<WsMsgpackContext>().getUser<User>()?.role === 'admin';
  }
}

@Controller()
class SecureController {
  @WsEventPattern(WS_PEER_CONNECTED)
  connected(@Ctx() ctx: WsMsgpackContext): void {
    seen.push(`connected ${ctx.getUser<User | undefined>()?.name ?? '-'}`);
  }

  @MessagePattern('whoami')
  whoami(@Ctx() ctx: WsMsgpackContext, @WsPeer() peer: WsMsgpackPeer): { ctx: unknown; peer: unknown } {
    return { ctx: ctx.getUser() ?? null, peer: peer.user ?? null };
  }

  @MessagePattern('whoami.decorated')
  decorated(@WsUser() user: User, @WsUser('role') role: string): string {
    return `${user.name}:${role}`;
  }

  @UseGuards(AdminOnly)
  @MessagePattern('admin.wipe')
  wipe(@WsUser('name') name: string): string {
    return `wiped by ${name}`;
  }

  @WsEventPattern('note')
  note(@Payload() text: string, @WsUser('name') name: string): void {
    seen.push(`note from ${name}: ${text}`);
  }

  @MessagePattern('echo')
  echo(@Payload() data: unknown): unknown {
    return data;
  }

  @MessagePattern('big')
  big(@Payload() size: number): Buffer {
    return Buffer.alloc(size, 1);
  }
}

/** Gates of tokens whose authentication waits (`slow-<n>`), and how often authenticate ran. */
const slow = new Map<string, Gate>();
let authenticateCalls = 0;

/** A token store, as an app would have one (async, as a database is). */
async function authenticate(req: IncomingMessage): Promise<User | undefined> {
  authenticateCalls++;
  const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
  if (token?.startsWith('slow-')) await slow.get(token)!.promise;
  switch (token) {
    case 'alice-token':
      return { name: 'alice', role: 'admin' };
    case 'bob-token':
      return { name: 'bob', role: 'user' };
    case 'suspended-token':
      throw new WsMsgpackUpgradeError(403, 'account suspended');
    case 'expired-token':
      throw new WsMsgpackUpgradeError(401, 'token expired', { 'www-authenticate': 'Bearer error="invalid_token"' });
    case 'nest-token':
      throw new ForbiddenException();
    case 'boom-token':
      throw new Error('token store unreachable');
    default:
      return token?.startsWith('slow-') ? { name: token, role: 'user' } : undefined;
  }
}

const bearer = (token: string): { headers: Record<string, string> } => ({ headers: { authorization: `Bearer ${token}` } });

/** What an upgrade request to `url` is answered with, read with a plain HTTP client. */
function upgradeResponse(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  const u = new URL(url.replace(/^ws/, 'http'));
  return within(
    new Promise((resolve, reject) => {
      const req = httpRequest({
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        headers: {
          connection: 'Upgrade',
          upgrade: 'websocket',
          'sec-websocket-version': '13',
          'sec-websocket-key': randomBytes(16).toString('base64'),
          'sec-websocket-protocol': 'wsmp.v1',
          ...headers,
        },
      });
      req.on('upgrade', (res, socket) => {
        socket.destroy();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' });
      });
      req.on('response', (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end();
    }),
    WAIT_MS,
    'upgrade response',
  );
}

/** connect() of a client must fail with UNAVAILABLE; returns the error. */
async function connectError(client: WsMsgpackClient): Promise<{ code: string; message: string }> {
  try {
    await within(client.connect(), WAIT_MS, 'connect');
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('connect() succeeded');
}

describe('authenticate: the identity of a connection, decided before the WebSocket is accepted', () => {
  let svc: TestService;
  const errors: Error[] = [];
  beforeAll(async () => {
    svc = await startService({ controllers: [SecureController], providers: [AdminOnly] }, { authenticate });
    svc.server.on('error', (e) => errors.push(e));
  });
  afterAll(() => svc.close());
  beforeEach(() => {
    errors.length = 0;
    seen.length = 0;
  });

  it("a bearer token from the client's headers becomes peer.user / ctx.getUser() / @WsUser(), in calls, events and the connected hook", async () => {
    const alice = svc.client(bearer('alice-token'));
    expect(await first(alice.send('whoami', {}))).toEqual({ ctx: { name: 'alice', role: 'admin' }, peer: { name: 'alice', role: 'admin' } });
    expect(await first(alice.send('whoami.decorated', {}))).toBe('alice:admin');
    await within(first(alice.emit('note', 'hello')));
    await until(() => seen.length === 2, WAIT_MS, 'connected hook and event');
    expect(seen).toEqual(['connected alice', 'note from alice: hello']);
    expect([...svc.server.peers].map((p) => p.user)).toEqual([{ name: 'alice', role: 'admin' }]);
    expect(errors).toEqual([]);
  });

  it('a guard (CanActivate) on one pattern checks a role from ctx.getUser(); the other patterns stay open', async () => {
    const alice = svc.client(bearer('alice-token'));
    const bob = svc.client(bearer('bob-token'));
    expect(await first(alice.send('admin.wipe', {}))).toBe('wiped by alice');
    expect(await errorOf(bob.send('admin.wipe', {}))).toEqual({ status: 'error', message: 'Forbidden resource' });
    expect(await first(bob.send('whoami.decorated', {}))).toBe('bob:user');
  });

  it('no token (authenticate returns undefined): HTTP 401, connect() rejects with UNAVAILABLE naming it, nothing opened or reported', async () => {
    const before = svc.server.connectionCount;
    const err = await connectError(svc.client());
    expect(err).toMatchObject({ code: WsMsgpackErrorCode.UNAVAILABLE, message: expect.stringMatching(/cannot connect to .*: HTTP 401 Unauthorized/) });
    expect(await upgradeResponse(svc.url)).toMatchObject({ status: 401, body: 'Unauthorized' });
    expect(svc.server.connectionCount).toBe(before);
    expect(errors).toEqual([]);
  });

  it('throw new WsMsgpackUpgradeError(403, message): HTTP 403 with that message as body, not reported', async () => {
    expect(await connectError(svc.client(bearer('suspended-token')))).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/HTTP 403 Forbidden/) });
    expect(await upgradeResponse(svc.url, bearer('suspended-token').headers)).toMatchObject({ status: 403, body: 'account suspended' });
    const expired = await upgradeResponse(svc.url, bearer('expired-token').headers);
    expect(expired).toMatchObject({ status: 401, body: 'token expired' });
    expect(expired.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
    expect(errors).toEqual([]);
  });

  it("an error with a status (Nest's ForbiddenException) is answered with that status", async () => {
    expect(await upgradeResponse(svc.url, bearer('nest-token').headers)).toMatchObject({ status: 403, body: 'Forbidden' });
    expect(errors).toEqual([]);
  });

  it('any other throw: HTTP 500 (the message stays on the server) and the error is reported through on("error")', async () => {
    // (5xx refusals are read with a plain HTTP client: WsMsgpackClient retries them, with backoff.)
    const raw = await upgradeResponse(svc.url, bearer('boom-token').headers);
    expect(raw).toMatchObject({ status: 500, body: 'Internal Server Error' });
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toBe('authenticate() threw; the upgrade was refused with 500: token store unreachable');
    expect((errors[0]!.cause as Error).message).toBe('token store unreachable');
  });

  it('WsMsgpackUpgradeError refuses a status outside 400-599 and header values that would break the response', () => {
    expect(() => new WsMsgpackUpgradeError(200)).toThrow(RangeError);
    expect(() => new WsMsgpackUpgradeError(401, 'x', { 'www-authenticate': 'a\r\nset-cookie: x=1' })).toThrow(/Invalid character/);
    expect(new WsMsgpackUpgradeError(429).message).toBe('Too Many Requests');
  });
});

describe('authenticate: reporting and options', () => {
  it('with no on("error") listener, a throwing authenticate is logged with Nest\'s Logger (never silent)', async () => {
    const logged: string[] = [];
    const logger: LoggerService = { log: () => {}, warn: () => {}, error: (m: unknown) => void logged.push(String(m)) };
    @Module({ controllers: [SecureController], providers: [AdminOnly] })
    class M {}
    const server = new WsMsgpackServer({ port: 0, authenticate });
    const app = await NestFactory.createMicroservice(M, { strategy: server, logger });
    await within(app.listen());
    try {
      expect(await upgradeResponse(`ws://127.0.0.1:${server.address()!.port}`, bearer('boom-token').headers)).toMatchObject({ status: 500 });
      await until(() => logged.some((m) => m.includes('authenticate() threw')), WAIT_MS, 'logged');
    } finally {
      await within(app.close());
    }
  });

  it('authenticate must be a function', () => {
    expect(() => new WsMsgpackServer({ authenticate: 'x' as never })).toThrow(/authenticate must be a function/);
  });

  it('without authenticate, ctx.getUser() is undefined', async () => {
    const svc = await startService({ controllers: [SecureController], providers: [AdminOnly] });
    try {
      expect(await first(svc.client().send('whoami', {}))).toEqual({ ctx: null, peer: null });
    } finally {
      await svc.close();
    }
  });
});

describe('allowedOrigins (cross-site WebSocket hijacking)', () => {
  const origin = (o: string): { wsOptions: { origin: string } } => ({ wsOptions: { origin: o } });

  it('a list admits its origins (normalised) and upgrades without an Origin; others get 403 before authenticate runs', async () => {
    const svc = await startService(
      { controllers: [SecureController], providers: [AdminOnly] },
      { allowedOrigins: ['https://app.example.com', 'HTTP://LOCALHOST:8080/'], authenticate },
    );
    try {
      expect(await first(svc.client({ ...bearer('alice-token'), ...origin('https://app.example.com') }).send('echo', 1))).toBe(1);
      expect(await first(svc.client({ ...bearer('alice-token'), ...origin('http://localhost:8080') }).send('echo', 2))).toBe(2);
      expect(await first(svc.client(bearer('alice-token')).send('echo', 3))).toBe(3); // a server-to-server client: no Origin
      const calls = authenticateCalls;
      const err = await connectError(svc.client({ ...bearer('alice-token'), ...origin('https://evil.example') }));
      expect(err).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/HTTP 403 Forbidden/) });
      expect(await upgradeResponse(svc.url, { ...bearer('alice-token').headers, origin: 'https://app.example.com.evil.example' })).toMatchObject({
        status: 403,
        body: 'origin not allowed: https://app.example.com.evil.example',
      });
      expect(await upgradeResponse(svc.url, { origin: 'null' })).toMatchObject({ status: 403 });
      expect(authenticateCalls).toBe(calls);
    } finally {
      await svc.close();
    }
  });

  it('a function decides for each upgrade (it gets undefined without an Origin); a throwing one gives 500, reported', async () => {
    const svc = await startService(
      { controllers: [SecureController], providers: [AdminOnly] },
      {
        allowedOrigins: (o) => {
          if (o === 'https://broken.example.com') throw new Error('origin registry down');
          return o !== undefined && o.endsWith('.example.com');
        },
      },
    );
    const errors: Error[] = [];
    svc.server.on('error', (e) => errors.push(e));
    try {
      expect(await first(svc.client(origin('https://tenant-7.example.com')).send('echo', 1))).toBe(1);
      expect(await connectError(svc.client())).toMatchObject({ message: expect.stringMatching(/HTTP 403/) });
      expect(await upgradeResponse(svc.url, { origin: 'https://broken.example.com' })).toMatchObject({ status: 500 });
      expect(errors.map((e) => e.message)).toEqual(['allowedOrigins() threw; the upgrade was refused with 500: origin registry down']);
    } finally {
      await svc.close();
    }
  });

  it('refuses an entry that is not an origin at construction', () => {
    expect(() => new WsMsgpackServer({ allowedOrigins: ['*'] })).toThrow(/allowedOrigins entry "\*" is not an origin/);
    expect(() => new WsMsgpackServer({ allowedOrigins: 'https://a.example' as never })).toThrow(/must be an array of origins or a function/);
  });
});

describe('maxConnections', () => {
  it('an upgrade beyond the limit gets 503; closing a connection frees its slot', async () => {
    const svc = await startService({ controllers: [SecureController], providers: [AdminOnly] }, { maxConnections: 2 });
    try {
      const a = svc.client();
      const b = svc.client();
      await within(Promise.all([a.connect(), b.connect()]));
      expect(await upgradeResponse(svc.url)).toMatchObject({ status: 503, body: 'too many connections (maxConnections 2)' });
      expect(svc.server.connectionCount).toBe(2);
      await a.close();
      await until(() => svc.server.connectionCount === 1, WAIT_MS, 'a gone on the server');
      expect(await first(svc.client().send('echo', 'in again'))).toBe('in again');
    } finally {
      await svc.close();
    }
  });

  it('upgrades still in authenticate count: a flood of slow authentications cannot exceed the limit', async () => {
    const svc = await startService({ controllers: [SecureController], providers: [AdminOnly] }, { maxConnections: 2, authenticate });
    try {
      slow.set('slow-1', gate());
      slow.set('slow-2', gate());
      const calls = authenticateCalls;
      const pending = [svc.client(bearer('slow-1')), svc.client(bearer('slow-2'))].map((c) => c.connect());
      await until(() => authenticateCalls === calls + 2, WAIT_MS, 'two authentications under way');
      expect(svc.server.connectionCount).toBe(0); // nothing accepted while authenticate runs
      // The third is refused before its authentication runs, although no connection is open yet.
      expect(await upgradeResponse(svc.url, bearer('alice-token').headers)).toMatchObject({ status: 503, body: 'too many connections (maxConnections 2)' });
      expect(authenticateCalls).toBe(calls + 2);
      slow.get('slow-1')!.open();
      slow.get('slow-2')!.open();
      await within(Promise.all(pending));
      expect([...svc.server.peers].map((p) => (p.user as User).name).sort()).toEqual(['slow-1', 'slow-2']);
    } finally {
      await svc.close();
    }
  });

  it('refuses a limit that is not a positive integer', () => {
    expect(() => new WsMsgpackServer({ maxConnections: 0 })).toThrow(/maxConnections must be a positive integer or Infinity, got 0/);
    expect(() => new WsMsgpackServer({ maxConnections: Infinity })).not.toThrow();
  });
});

describe('handshakeTimeout', () => {
  it('an authenticate that has not answered in time gets 503 (reported), frees its slot, and its late answer is ignored', async () => {
    const svc = await startService({ controllers: [SecureController], providers: [AdminOnly] }, { authenticate, handshakeTimeout: 300, maxConnections: 1 });
    const errors: Error[] = [];
    svc.server.on('error', (e) => errors.push(e));
    try {
      slow.set('slow-late', gate());
      const started = Date.now();
      expect(await upgradeResponse(svc.url, bearer('slow-late').headers)).toMatchObject({ status: 503, body: 'the upgrade was not completed within 300 ms' });
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      expect(errors.map((e) => e.message)).toEqual([
        'the checks of an upgrade (allowedOrigins, authenticate) did not finish within handshakeTimeout (300 ms); it was refused with 503',
      ]);
      const alice = svc.client(bearer('alice-token'));
      expect(await first(alice.send('echo', 'the slot is free'))).toBe('the slot is free');
      slow.get('slow-late')!.open(); // authenticate answers after all: nothing happens
      expect(await first(alice.send('echo', 'still served'))).toBe('still served');
      expect(svc.server.connectionCount).toBe(1);
      expect(errors).toHaveLength(1);
    } finally {
      await svc.close();
    }
  });

  it('a client that resets its socket while authenticate runs does not crash the server', async () => {
    const svc = await startService({ controllers: [SecureController], providers: [AdminOnly] }, { authenticate, maxConnections: 1 });
    try {
      slow.set('slow-reset', gate());
      const calls = authenticateCalls;
      const { port } = new URL(svc.url);
      const socket = netConnect(Number(port), '127.0.0.1');
      socket.on('error', () => {});
      await within(new Promise((r) => socket.once('connect', r)));
      socket.write(
        `GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Protocol: wsmp.v1\r\nAuthorization: Bearer slow-reset\r\n\r\n`,
      );
      await until(() => authenticateCalls === calls + 1, WAIT_MS, 'authentication under way');
      socket.resetAndDestroy(); // the server's socket gets ECONNRESET with nobody else listening
      await within(new Promise((r) => socket.once('close', r)));
      slow.get('slow-reset')!.open();
      expect(await first(svc.client(bearer('alice-token')).send('echo', 'alive'))).toBe('alive');
      expect(svc.server.connectionCount).toBe(1);
    } finally {
      await svc.close();
    }
  });

  it('the standalone server gives a client that does not finish sending its upgrade request 408, after handshakeTimeout', async () => {
    const svc = await startService({ controllers: [SecureController], providers: [AdminOnly] }, { handshakeTimeout: 300 });
    try {
      const { port } = new URL(svc.url);
      const socket = netConnect(Number(port), '127.0.0.1');
      socket.on('error', () => {});
      let answer = '';
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => (answer += d));
      await within(new Promise((r) => socket.once('connect', r)));
      const started = Date.now();
      socket.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n'); // ... and never the rest
      await within(new Promise((r) => socket.once('close', r)), WAIT_MS, 'server closes the slow socket');
      expect(answer).toMatch(/^HTTP\/1\.1 408 Request Timeout/);
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    } finally {
      await svc.close();
    }
  });

  it('refuses a negative timeout', () => {
    expect(() => new WsMsgpackServer({ handshakeTimeout: -1 })).toThrow(/handshakeTimeout must be a number of ms >= 0/);
  });
});

describe('maxHeaderSize', () => {
  it('the standalone server answers an upgrade whose headers exceed it with 431; smaller ones connect', async () => {
    const svc = await startService({ controllers: [SecureController], providers: [AdminOnly] }, { maxHeaderSize: 4096 });
    try {
      const err = await connectError(svc.client({ headers: { 'x-big': 'a'.repeat(5000) } }));
      expect(err).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/HTTP 431 Request Header Fields Too Large/) });
      expect(await first(svc.client({ headers: { 'x-small': 'a'.repeat(2000) } }).send('echo', 'ok'))).toBe('ok');
    } finally {
      await svc.close();
    }
  });

  it("is refused with httpServer (it is that server's own setting), and must be a positive integer", async () => {
    const { createServer } = await import('node:http');
    expect(() => new WsMsgpackServer({ httpServer: createServer(), path: '/rpc', maxHeaderSize: 8192 })).toThrow(/maxHeaderSize is for the standalone server/);
    expect(() => new WsMsgpackServer({ maxHeaderSize: 0 })).toThrow(/maxHeaderSize must be a positive integer/);
  });
});

describe('limits: the precise error of each', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService(
      { controllers: [SecureController], providers: [AdminOnly] },
      { maxStrLength: 100, maxBinLength: 100, maxArrayLength: 10, maxMapLength: 10, maxExtLength: 10 },
    );
  });
  afterAll(() => svc.close());

  const isError = (id: number) => (f: unknown[]) => f[0] === 5 && f[1] === id;

  it.each([
    ['maxStrLength', 'x'.repeat(101), 'Max length exceeded: UTF-8 byte length (101) > maxStrLength (100)'],
    ['maxBinLength', Buffer.alloc(101), 'Max length exceeded: bin length (101) > maxBinLength (100)'],
    ['maxArrayLength', new Array(11).fill(0), 'Max length exceeded: array length (11) > maxArrayLength (10)'],
    // (sic: @msgpack/msgpack 3.1 names the map limit "maxMapLengthLength" in its message)
    ['maxMapLength', Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`k${i}`, i])), /^Max length exceeded: map length \(11\) > maxMapLength(Length)? \(10\)$/],
  ])('%s: the call fails with PROTOCOL_ERROR naming the limit, the connection serves on', async (_name, payload, message) => {
    const peer = await RawPeer.open(svc.url);
    peer.send([1, 1, 'echo', payload]);
    const err = await peer.next(isError(1));
    expect(err.slice(0, 3)).toEqual([5, 1, WsMsgpackErrorCode.PROTOCOL_ERROR]);
    const text = String(err[3]).replace(/^frame is not valid msgpack: /, '');
    expect(String(err[3])).toMatch(/^frame is not valid msgpack: /);
    if (typeof message === 'string') expect(text).toBe(message);
    else expect(text).toMatch(message);
    peer.send([1, 3, 'echo', 'fine']);
    expect(await peer.next((f) => f[1] === 3)).toEqual([4, 3, 'fine']);
    peer.close();
  });

  it('maxExtLength: the call fails with PROTOCOL_ERROR naming the limit', async () => {
    const peer = await RawPeer.open(svc.url);
    // [1, 5, "echo", ext8(type 1, 11 bytes)]
    peer.sendBytes(Uint8Array.from([0x94, 0x01, 0x05, 0xa4, 0x65, 0x63, 0x68, 0x6f, 0xc7, 11, 0x01, ...new Array(11).fill(0)]));
    expect(await peer.next(isError(5))).toEqual([5, 5, WsMsgpackErrorCode.PROTOCOL_ERROR, 'frame is not valid msgpack: Max length exceeded: ext length (11) > maxExtLength (10)']);
    peer.close();
  });

  it('the client applies its own decoder limits to answers: PROTOCOL_ERROR naming the limit', async () => {
    const c = svc.client({ maxStrLength: 10 });
    expect(await errorOf(c.send('echo', 'x'.repeat(11)))).toMatchObject({
      code: WsMsgpackErrorCode.PROTOCOL_ERROR,
      message: 'frame is not valid msgpack: Max length exceeded: UTF-8 byte length (11) > maxStrLength (10)',
    });
    expect(await first(c.send('echo', 'short'))).toBe('short');
  });

  it("an answer over the client's maxPayload: the client closes with 1009 and the call fails with UNAVAILABLE", async () => {
    const c = svc.client({ maxPayload: 1024 });
    await c.connect();
    const closes: number[] = [];
    svc.server.on('disconnect', (_ws, code) => closes.push(code)); // the other clients of this block stay connected
    const err = await errorOf(c.send('big', 2000));
    expect(err).toMatchObject({ code: WsMsgpackErrorCode.UNAVAILABLE });
    await until(() => closes.length === 1, WAIT_MS, 'the server sees the close');
    expect(closes).toEqual([CloseCode.MESSAGE_TOO_BIG]);
  });
});
