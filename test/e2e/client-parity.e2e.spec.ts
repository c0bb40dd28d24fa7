// Issue 16, items 3, 6 and 7: the Nest client keeps Nest's own client and context contracts
// (serializeResponse/serializeError, Nest 12's createPacket/setOnDispatchHook and getMetadata,
// fail-fast calls with the socket's error as their cause), side by side with Nest's TCP transport;
// iterate() takes per-call options; events dropped for want of handlers are no error.
import { jest } from '@jest/globals';
import { Controller, Logger, Module, type INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientProxy, ClientTCP, Ctx, EventPattern, MessagePattern, Payload, RpcException, Transport, type ReadPacket } from '@nestjs/microservices';
import type { AddressInfo } from 'node:net';
import { catchError, from, interval, lastValueFrom, type Observable, throwError } from 'rxjs';
import { WsMsgpackClient, WsMsgpackContext, WsMsgpackError, WsMsgpackRecordBuilder, WsMsgpackServer, WsMsgpackStatus } from '../../src/index.js';
import { all, errorOf, first, freePort, startService, until, WAIT_MS, within, type TestService } from '../support/helpers.js';

/** Nest 12 has packet metadata (createPacket, setOnDispatchHook, TcpContext.getMetadata); Nest 11 has none. */
const NEST_12 = typeof (ClientProxy.prototype as { setOnDispatchHook?: unknown }).setOnDispatchHook === 'function';
const onNest12 = NEST_12 ? it : it.skip;

/** Nest 12's packet, with its metadata (Nest 11's ReadPacket has none). */
type Packet = ReadPacket & { metadata?: Record<string, string> };

const seen = { eventMetadata: [] as unknown[], aborted: 0, headers: [] as unknown[] };

/** What a context gives as metadata: Nest 12's TcpContext and this transport's both have getMetadata(). */
type WithMetadata = { getMetadata(): unknown };

@Controller()
class ParityController {
  @MessagePattern('sum')
  sum(@Payload() data: number[]): number {
    return data.reduce((a, b) => a + b, 0);
  }

  @MessagePattern('stream')
  stream(@Payload() data: number[]): Observable<number> {
    return from(data);
  }

  @MessagePattern('fail')
  fail(): never {
    throw new RpcException('boom');
  }

  @MessagePattern('meta')
  meta(@Ctx() ctx: WithMetadata): unknown {
    return ctx.getMetadata() ?? null;
  }

  @EventPattern('metaEvent')
  metaEvent(@Ctx() ctx: WithMetadata): void {
    seen.eventMetadata.push(ctx.getMetadata() ?? null);
  }

  @MessagePattern('ticks')
  ticks(@Ctx() ctx: WsMsgpackContext): Observable<number> {
    seen.headers.push(ctx.getHeaders());
    ctx.getSignal().addEventListener('abort', () => seen.aborted++);
    return interval(1);
  }
}

/** Nest TCP's client with overridden serializers. */
class SerializingTcpClient extends ClientTCP {
  protected override serializeResponse(response: unknown): unknown {
    return { serializedResponse: response };
  }
  protected override serializeError(err: unknown): unknown {
    return { serializedError: err };
  }
}

/** This transport's client with the same overrides. */
class SerializingWsClient extends WsMsgpackClient {
  protected override serializeResponse(response: unknown): unknown {
    return { serializedResponse: response };
  }
  protected override serializeError(err: unknown): unknown {
    return { serializedError: err };
  }
}

@Module({ controllers: [ParityController] })
class ParityModule {}

describe('Nest client contracts, side by side with Nest TCP', () => {
  let tcpApp: INestMicroservice;
  let wsApp: INestMicroservice;
  let tcpPort: number;
  let wsUrl: string;
  const clients: Array<{ close(): unknown }> = [];
  const tcpClient = (C: typeof ClientTCP = ClientTCP): ClientTCP => {
    const c = new C({ host: '127.0.0.1', port: tcpPort });
    clients.push(c);
    return c;
  };
  const wsClient = (C: typeof WsMsgpackClient = WsMsgpackClient): WsMsgpackClient => {
    const c = new C({ url: wsUrl });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    tcpApp = await NestFactory.createMicroservice(ParityModule, { transport: Transport.TCP, options: { host: '127.0.0.1', port: 0 }, logger: false });
    await within(tcpApp.listen());
    tcpPort = (tcpApp.unwrap<import('node:net').Server>().address() as AddressInfo).port;
    const server = new WsMsgpackServer({ port: 0, host: '127.0.0.1' });
    wsApp = await NestFactory.createMicroservice(ParityModule, { strategy: server, logger: false });
    await within(wsApp.listen());
    wsUrl = `ws://127.0.0.1:${server.address()!.port}`;
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await within(Promise.all([tcpApp.close(), wsApp.close()]));
  });

  it("a subclass's serializeResponse() and serializeError() get every response and error, as with Nest TCP", async () => {
    const tcp = tcpClient(SerializingTcpClient);
    const ws = wsClient(SerializingWsClient);
    const viaTcp = await all(tcp.send('sum', [1, 2, 3]));
    expect(viaTcp).toEqual([{ serializedResponse: 6 }]);
    expect(await all(ws.send('sum', [1, 2, 3]))).toEqual(viaTcp);
    const streamViaTcp = await all(tcp.send('stream', [1, 2, 3]));
    expect(streamViaTcp).toEqual([1, 2, 3].map((n) => ({ serializedResponse: n })));
    expect(await all(ws.send('stream', [1, 2, 3]))).toEqual(streamViaTcp);
    const tcpError = await errorOf(tcp.send('fail', {}));
    expect(tcpError).toEqual({ serializedError: { status: 'error', message: 'boom' } });
    expect(await errorOf(ws.send('fail', {}))).toEqual(tcpError);
  });

  it('without overrides, responses and errors are what the server sent (the identity serializers)', async () => {
    const ws = wsClient();
    expect(await first(ws.send('sum', [2, 3]))).toBe(5);
    expect(await errorOf(ws.send('fail', {}))).toEqual({ status: 'error', message: 'boom' });
  });

  onNest12('setOnDispatchHook(): the hook sees every request and event; its metadata reaches ctx.getMetadata(), as with Nest TCP', async () => {
    const hooked: Array<{ pattern: unknown; data: unknown }> = [];
    const hook = (packet: Packet): void => {
      hooked.push({ pattern: packet.pattern, data: packet.data });
      packet.metadata = { traceId: 't-1', tenant: 'acme' };
    };
    const tcp = tcpClient();
    const ws = wsClient();
    (tcp as unknown as { setOnDispatchHook(h: typeof hook): void }).setOnDispatchHook(hook);
    (ws as unknown as { setOnDispatchHook(h: typeof hook): void }).setOnDispatchHook(hook);
    const viaTcp = await first(tcp.send('meta', { n: 1 }));
    expect(viaTcp).toEqual({ traceId: 't-1', tenant: 'acme' });
    expect(await first(ws.send('meta', { n: 1 }))).toEqual(viaTcp);
    seen.eventMetadata = [];
    await lastValueFrom(tcp.emit('metaEvent', { n: 2 }), { defaultValue: undefined });
    await lastValueFrom(ws.emit('metaEvent', { n: 2 }), { defaultValue: undefined });
    await until(() => seen.eventMetadata.length === 2, WAIT_MS, 'both events handled');
    expect(seen.eventMetadata).toEqual([viaTcp, viaTcp]);
    expect(hooked).toEqual([
      { pattern: 'meta', data: { n: 1 } },
      { pattern: 'meta', data: { n: 1 } },
      { pattern: 'metaEvent', data: { n: 2 } },
      { pattern: 'metaEvent', data: { n: 2 } },
    ]);
  });

  onNest12("metadata is this transport's headers: a record's own headers join it, and win on a clash", async () => {
    const ws = wsClient();
    (ws as unknown as { setOnDispatchHook(h: (p: Packet) => void): void }).setOnDispatchHook((packet) => {
      packet.metadata = { traceId: 't-2', tenant: 'from-hook' };
    });
    const record = new WsMsgpackRecordBuilder({}).setHeaders({ tenant: 'from-record', n: 7 }).build();
    // getMetadata() is Nest's Record<string, string>: the number header stays a header only.
    expect(await first(ws.send('meta', record))).toEqual({ traceId: 't-2', tenant: 'from-record' });
  });

  it('ctx.getMetadata() exists on every Nest version: the string headers of the call, {} when none', async () => {
    const ws = wsClient();
    expect(await first(ws.send('meta', {}))).toEqual({});
    expect(await first(ws.send('meta', new WsMsgpackRecordBuilder({}).setHeaders({ locale: 'fr' }).build()))).toEqual({ locale: 'fr' });
  });
});

describe('a server that is down: fail-fast by default (Nest TCP, gRPC), waiting only when asked', () => {
  it('a call fails at once with UNAVAILABLE whose cause is the ECONNREFUSED error Nest TCP fails with', async () => {
    const port = await freePort(); // nobody listens
    const tcp = new ClientTCP({ host: '127.0.0.1', port });
    // readyTimeout stays 10 s, more than every bounded wait here: waiting for it would fail the test.
    const ws = new WsMsgpackClient({ url: `ws://127.0.0.1:${port}`, reconnect: { initialDelay: 30_000, maxDelay: 60_000 } });
    ws.on('error', () => {});
    try {
      const tcpError = (await errorOf(tcp.send('sum', [1]))) as NodeJS.ErrnoException;
      expect(tcpError.code).toBe('ECONNREFUSED');
      const first = (await errorOf(ws.send('sum', [1]))) as WsMsgpackError;
      expect(first).toBeInstanceOf(WsMsgpackError);
      expect(first.code).toBe('UNAVAILABLE');
      const cause = first.cause as NodeJS.ErrnoException; // Node's own error (another realm than Jest's: no instanceof)
      expect({ code: cause.code, syscall: cause.syscall }).toEqual({ code: tcpError.code, syscall: tcpError.syscall });
      // The next attempt waits for its backoff: a call now fails at once, with the same cause.
      expect(await first$(ws.status)).toBe(WsMsgpackStatus.RECONNECTING);
      const second = (await errorOf(ws.send('sum', [1]))) as WsMsgpackError;
      expect(second).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/last connection attempt failed.*ECONNREFUSED/) });
      expect((second.cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
      // Events and connect() too.
      const emitted = (await errorOf(ws.emit('metaEvent', {}))) as WsMsgpackError;
      expect(emitted.code).toBe('UNAVAILABLE');
      expect((emitted.cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
      const connectError = (await within(
        ws.connect().then(
          () => undefined,
          (e: unknown) => e as WsMsgpackError,
        ),
      )) as WsMsgpackError;
      expect((connectError.cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
    } finally {
      await tcp.close();
      await ws.close();
    }
  });

  it("Nest's disconnected-client handling (its TCP integration test) maps the error like TCP's with a one-line serializeError", async () => {
    // Nest's integration test (integration/microservices/src/disconnected.controller.ts) does this:
    const nestHandling = <T>(call: Observable<T>): Observable<T> =>
      call.pipe(
        catchError((error: { err?: { code?: string }; code?: string }) => {
          const { code } = error?.err ?? error ?? { code: 'CONN_ERR' };
          return throwError(() => (code === 'ECONNREFUSED' || code === 'CONN_ERR' ? new Error('RequestTimeout: ECONNREFUSED') : new Error('InternalServerError')));
        }),
      );
    /** The documented recipe: Node's socket error where Nest TCP code looks for it (`err.code`). */
    class NestErrorsClient extends WsMsgpackClient {
      protected override serializeError(err: unknown): unknown {
        const cause = err instanceof WsMsgpackError ? (err.cause as { code?: unknown } | undefined) : undefined;
        return typeof cause?.code === 'string' ? cause : err;
      }
    }
    const port = await freePort();
    const tcp = new ClientTCP({ host: '127.0.0.1', port });
    const ws = new NestErrorsClient({ url: `ws://127.0.0.1:${port}` });
    ws.on('error', () => {});
    try {
      const viaTcp = await errorOf(nestHandling(tcp.send({ cmd: 'none' }, [1, 2, 3])));
      expect(viaTcp).toEqual(new Error('RequestTimeout: ECONNREFUSED'));
      expect(await errorOf(nestHandling(ws.send({ cmd: 'none' }, [1, 2, 3])))).toEqual(viaTcp);
    } finally {
      await tcp.close();
      await ws.close();
    }
  });

  it('a call made while an attempt is under way waits for it: its success, or its failure', async () => {
    const svc = await startService({ controllers: [ParityController] });
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let asked = 0;
    const client = new WsMsgpackClient({
      url: svc.url,
      headers: async () => {
        asked++;
        await gate; // the attempt stays under way until the test opens the gate
        return {};
      },
    });
    let settled = false;
    try {
      const answer = first(client.send('sum', [4, 5])).finally(() => (settled = true));
      await until(() => asked === 1, WAIT_MS, 'the attempt under way');
      const second = first(client.send('sum', [1, 1])); // made while the attempt is under way
      expect(settled).toBe(false);
      open();
      expect(await answer).toBe(9);
      expect(await second).toBe(2);
    } finally {
      open();
      await client.close();
      await svc.close();
    }
    const port = await freePort();
    const refused = new WsMsgpackClient({ url: `ws://127.0.0.1:${port}`, headers: () => gate.then(() => ({})) });
    refused.on('error', () => {});
    try {
      const err = (await errorOf(refused.send('sum', [1]))) as WsMsgpackError;
      expect(err).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/cannot connect to .*ECONNREFUSED/) });
    } finally {
      await refused.close();
    }
  });

  it('with several URLs, a fail-fast call waits for a round: one refusing replica does not fail it when the next answers', async () => {
    const svc = await startService({ controllers: [ParityController] });
    const down = await freePort();
    const client = new WsMsgpackClient({ url: [`ws://127.0.0.1:${down}`, svc.url], reconnect: { initialDelay: 1, maxDelay: 5 } });
    client.on('error', () => {});
    try {
      expect(await first(client.send('sum', [20, 22]))).toBe(42);
    } finally {
      await client.close();
      await svc.close();
    }
  });

  it("waitForReady: true keeps today's wait: a call made while the server is down is answered once it is up", async () => {
    const port = await freePort();
    const client = new WsMsgpackClient({ url: `ws://127.0.0.1:${port}`, reconnect: { initialDelay: 5, maxDelay: 20 }, waitForReady: true });
    const statuses: string[] = [];
    client.status.subscribe((s) => statuses.push(s));
    client.on('error', () => {});
    let svc: TestService | undefined;
    try {
      const answer = first(client.send('sum', [1, 2]), WAIT_MS);
      await until(() => statuses.includes(WsMsgpackStatus.RECONNECTING), WAIT_MS, 'an attempt refused');
      svc = await startService({ controllers: [ParityController] }, { port });
      expect(await answer).toBe(3);
    } finally {
      await client.close();
      await svc?.close();
    }
  });
});

describe('iterate() takes per-call options, as the web client does', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [ParityController] });
  });
  afterAll(() => svc.close());

  it('headers, window and a signal; the options win over those of a record, headers merge', async () => {
    const client = svc.client();
    const controller = new AbortController();
    seen.headers = [];
    seen.aborted = 0;
    const record = new WsMsgpackRecordBuilder(null).setHeaders({ a: 'record', b: 'record' }).build();
    const it = client.iterate<number>('ticks', record, { headers: { b: 'option' }, window: 2, signal: controller.signal });
    expect((await within(it.next())).value).toBe(0);
    expect(seen.headers).toEqual([{ a: 'record', b: 'option' }]);
    controller.abort(new Error('enough'));
    await expect(within(it.next())).rejects.toMatchObject({ code: 'CANCELLED', message: 'the call was aborted: enough' });
    await until(() => seen.aborted === 1, WAIT_MS, 'the handler aborted');
  });

  it('a per-call timeout ends the iteration with DEADLINE_EXCEEDED', async () => {
    const client = svc.client();
    const it = client.iterate<number>('ticks', null, { timeout: 100 });
    const error = await within(
      (async () => {
        try {
          for await (const _ of it) {
            /* until the deadline */
          }
        } catch (e) {
          return e;
        }
        return 'completed';
      })(),
    );
    expect(error).toMatchObject({ code: 'DEADLINE_EXCEEDED' });
  });
});

describe('events from the server to a client that exposes no handlers are no error (issue 16, item 3)', () => {
  afterEach(() => jest.restoreAllMocks());

  it("they are counted, each pattern logged once at debug level; nothing on 'error', no error log", async () => {
    const svc = await startService({ controllers: [ParityController] });
    const debug = jest.spyOn(Logger.prototype, 'debug').mockImplementation(() => {});
    const error = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => {});
    const client = svc.client();
    const reported: Error[] = [];
    client.on('error', (e) => reported.push(e));
    try {
      await client.connect();
      await until(() => svc.server.peers.size === 1, WAIT_MS, 'the server sees the client');
      for (let i = 0; i < 3; i++) svc.server.broadcast('news', i);
      svc.server.broadcast({ topic: 'prices' }, 1);
      await until(() => client.droppedEvents === 4, WAIT_MS, 'four dropped events counted');
      expect(reported).toEqual([]);
      expect(error).not.toHaveBeenCalled();
      const lines = debug.mock.calls.map((c) => String(c[0])).filter((m) => m.includes('exposes no handlers'));
      expect(lines).toEqual([expect.stringContaining('pattern "news"'), expect.stringContaining('pattern {"topic":"prices"}')]);
    } finally {
      await client.close();
      await svc.close();
    }
  });
});

/** The current value of a status Observable (a replaying subject). */
function first$<T>(o: Observable<T>): Promise<T> {
  return first(o);
}
