// OpenTelemetry tracing over real sockets: a Nest microservice on this transport and a
// WsMsgpackClient, with the OpenTelemetry SDK registered as an application registers it (a
// BasicTracerProvider with an in-memory exporter, the W3C trace-context propagator, and the
// AsyncLocalStorage context manager). Each test reads the finished spans of both sides.
import { Controller } from '@nestjs/common';
import { Ctx, Payload, RpcException } from '@nestjs/microservices';
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { concat, defer, firstValueFrom, interval, NEVER, Observable, of, startWith, take, tap, throwError } from 'rxjs';
import {
  configureWsMsgpackTracing,
  WS_MSGPACK_TRACER_NAME,
  WsEventPattern,
  WsMessagePattern,
  WsMsgpackContext,
  WsMsgpackError,
  WsMsgpackErrorCode,
  WsMsgpackRecordBuilder,
  type WsMsgpackClient,
} from '../../src/index.js';
import { all, errorOf, first, startClientApp, startService, until, type TestService } from '../support/helpers.js';

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const contextManager = new AsyncLocalStorageContextManager();

/** What the handlers saw: the headers and the span active while they ran. */
const seen: Record<string, { headers: Record<string, unknown>; traceId?: string; spanId?: string }> = {};
/** When the stream handler produced its last item (ms since epoch). */
let lastItemAt = 0;
const events: { traceId?: string; spanId?: string }[] = [];

function activeIds(): { traceId?: string; spanId?: string } {
  const sc = trace.getSpan(context.active())?.spanContext();
  return { traceId: sc?.traceId, spanId: sc?.spanId };
}

@Controller()
class TracedController {
  @WsMessagePattern('trace.unary')
  unary(@Payload() n: number, @Ctx() ctx: WsMsgpackContext): number {
    seen.unary = { headers: { ...ctx.getHeaders() }, ...activeIds() };
    // The user's own span nests under the server span.
    trace.getTracer('app').startActiveSpan('app.work', (s) => s.end());
    return n * 2;
  }

  @WsMessagePattern({ svc: 'trace', op: 'obj' })
  obj(): string {
    return 'obj';
  }

  @WsMessagePattern('trace.stream')
  stream(@Ctx() ctx: WsMsgpackContext): Observable<number> {
    seen.stream = { headers: { ...ctx.getHeaders() }, ...activeIds() };
    return interval(20).pipe(
      take(4),
      tap(() => (lastItemAt = Date.now())),
    );
  }

  @WsMessagePattern('trace.stream-fail')
  streamFail(): Observable<number> {
    // Subscribed by the transport after the handler returned: still with the server span active.
    return defer(() => {
      trace.getTracer('app').startActiveSpan('app.produce', (s) => s.end());
      return concat(
        of(1, 2),
        throwError(() => new RpcException({ status: 'error', message: 'broke at 3' })),
      );
    });
  }

  /** Calls the client app back (server -> client), trace context put in the headers by hand. */
  @WsMessagePattern('trace.callback')
  callback(@Ctx() ctx: WsMsgpackContext): Observable<string> {
    const headers: Record<string, string> = {};
    propagation.inject(context.active(), headers);
    return ctx.getPeer().send<string>('app.hello', new WsMsgpackRecordBuilder('hi').setHeaders(headers).build());
  }

  @WsMessagePattern('trace.fail')
  fail(): never {
    throw new RpcException({ status: 'error', message: 'nope' });
  }

  @WsMessagePattern('trace.slow')
  async slow(): Promise<string> {
    await new Promise((r) => setTimeout(r, 300));
    return 'late';
  }

  @WsMessagePattern('trace.endless')
  endless(): Observable<number> {
    return NEVER.pipe(startWith(1));
  }

  @WsMessagePattern('trace.echo-headers')
  echoHeaders(@Ctx() ctx: WsMsgpackContext): Record<string, unknown> {
    return { ...ctx.getHeaders() };
  }

  @WsEventPattern('trace.evt')
  evt(): void {
    events.push(activeIds());
  }
}

/** Handlers of a client app, that the server calls over the client's connection. */
@Controller()
class AppSideController {
  @WsMessagePattern('app.hello')
  hello(@Payload() greeting: string): string {
    seen.appSide = { headers: {}, ...activeIds() };
    return `${greeting} back`;
  }
}

/** Finished spans of this package's tracer (not the app's), with `kind`. */
function ours(kind?: SpanKind): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((s) => s.instrumentationScope.name === WS_MSGPACK_TRACER_NAME && (kind === undefined || s.kind === kind));
}

/** Waits until one finished span of each kind exists, and returns them. */
async function pair(client: SpanKind = SpanKind.CLIENT, server: SpanKind = SpanKind.SERVER): Promise<{ c: ReadableSpan; s: ReadableSpan }> {
  await until(() => ours(client).length >= 1 && ours(server).length >= 1, 5000, 'client and server spans');
  expect(ours(client)).toHaveLength(1);
  expect(ours(server)).toHaveLength(1);
  return { c: ours(client)[0]!, s: ours(server)[0]! };
}

function ms(t: [number, number]): number {
  return t[0] * 1e3 + t[1] / 1e6;
}

function expectLinked(c: ReadableSpan, s: ReadableSpan): void {
  expect(s.spanContext().traceId).toBe(c.spanContext().traceId);
  expect(s.parentSpanContext?.spanId).toBe(c.spanContext().spanId);
  expect(s.parentSpanContext?.isRemote).toBe(true);
}

describe('OpenTelemetry tracing (W3C trace context in the call headers)', () => {
  let svc: TestService;
  let client: WsMsgpackClient;

  beforeAll(async () => {
    context.setGlobalContextManager(contextManager.enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    trace.setGlobalTracerProvider(provider);
    svc = await startService({ controllers: [TracedController] });
    client = svc.client();
    await client.connect();
  });

  afterAll(async () => {
    await svc.close();
    await provider.shutdown();
    trace.disable();
    propagation.disable();
    context.disable();
    configureWsMsgpackTracing();
  });

  beforeEach(() => exporter.reset());

  it('unary call: a CLIENT and a SERVER span of one trace, the server span a child of the client span', async () => {
    expect(await first(client.send('trace.unary', 21))).toBe(42);
    const { c, s } = await pair();
    expectLinked(c, s);
    expect(c.parentSpanContext).toBeUndefined(); // no span was active: the client span is the root
    for (const span of [c, s]) {
      expect(span.name).toBe('trace.unary');
      expect(span.attributes).toMatchObject({
        'rpc.system': 'nestjs-ws-msgpack',
        'rpc.system.name': 'nestjs-ws-msgpack',
        'rpc.method': 'trace.unary',
        'rpc.status_code': 'OK',
      });
      expect(span.attributes['error.type']).toBeUndefined();
      // Success leaves the status unset (the OpenTelemetry spec: instrumentations do not set OK).
      expect(span.status.code).toBe(SpanStatusCode.UNSET);
    }
    expect(c.kind).toBe(SpanKind.CLIENT);
    expect(s.kind).toBe(SpanKind.SERVER);
    // The header the server got, and the span active in the handler (so the app's span nests).
    expect(seen.unary!.headers.traceparent).toBe(`00-${c.spanContext().traceId}-${c.spanContext().spanId}-01`);
    expect(seen.unary).toMatchObject({ traceId: s.spanContext().traceId, spanId: s.spanContext().spanId });
    const app = exporter.getFinishedSpans().find((x) => x.name === 'app.work');
    expect(app?.parentSpanContext?.spanId).toBe(s.spanContext().spanId);
  });

  it('an object pattern is rpc.method as JSON (as the server sees it)', async () => {
    expect(await first(client.send({ svc: 'trace', op: 'obj' }, null))).toBe('obj');
    const { c, s } = await pair();
    expect(c.name).toBe('{"svc":"trace","op":"obj"}');
    expect(s.attributes['rpc.method']).toBe('{"svc":"trace","op":"obj"}');
  });

  it('stream call: one span each side, the server span ends after the last item', async () => {
    expect(await all(client.send('trace.stream', null))).toEqual([0, 1, 2, 3]);
    const { c, s } = await pair();
    expectLinked(c, s);
    expect(seen.stream).toMatchObject({ traceId: c.spanContext().traceId, spanId: s.spanContext().spanId });
    expect(ms(s.endTime)).toBeGreaterThanOrEqual(lastItemAt - 2);
    expect(ms(s.endTime) - ms(s.startTime)).toBeGreaterThanOrEqual(50); // four items 20 ms apart
    expect(ms(c.endTime)).toBeGreaterThanOrEqual(lastItemAt - 2);
    expect([c.attributes['rpc.status_code'], s.attributes['rpc.status_code']]).toEqual(['OK', 'OK']);
  });

  it('stream through iterate(): the same pair, ended when the loop is done', async () => {
    const got: number[] = [];
    for await (const n of client.iterate<number>('trace.stream', null)) got.push(n);
    expect(got).toEqual([0, 1, 2, 3]);
    const { c, s } = await pair();
    expectLinked(c, s);
    expect(c.attributes['rpc.status_code']).toBe('OK');
    expect(ms(s.endTime)).toBeGreaterThanOrEqual(lastItemAt - 2);
  });

  it('a stream that fails midway: ERROR on both sides; what its subscription does nests under the server span', async () => {
    const got: unknown[] = [];
    const err = await errorOf(client.send('trace.stream-fail', null).pipe(tap((v) => got.push(v))));
    expect(got).toEqual([1, 2]);
    expect(err).toEqual({ status: 'error', message: 'broke at 3' });
    const { c, s } = await pair();
    expectLinked(c, s);
    for (const span of [c, s]) expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'broke at 3' });
    const produce = exporter.getFinishedSpans().find((x) => x.name === 'app.produce');
    expect(produce?.parentSpanContext?.spanId).toBe(s.spanContext().spanId);
  });

  it("server -> client calls: the client app's handler runs in a SERVER span too (the same dispatcher)", async () => {
    const app = await startClientApp({ controllers: [AppSideController] }, { url: svc.url });
    try {
      expect(await first(app.client.send('trace.callback', null))).toBe('hi back');
      await until(() => ours(SpanKind.SERVER).length === 2, 5000, 'both server spans');
      const hubSpan = ours(SpanKind.SERVER).find((x) => x.name === 'trace.callback')!;
      const appSpan = ours(SpanKind.SERVER).find((x) => x.name === 'app.hello')!;
      const clientSpan = ours(SpanKind.CLIENT).find((x) => x.name === 'trace.callback')!;
      expectLinked(clientSpan, hubSpan);
      // One trace end to end: client -> server -> (headers set by hand) -> client app.
      expect(appSpan.spanContext().traceId).toBe(clientSpan.spanContext().traceId);
      expect(appSpan.parentSpanContext?.spanId).toBe(hubSpan.spanContext().spanId);
      expect(seen.appSide).toMatchObject({ spanId: appSpan.spanContext().spanId });
    } finally {
      await app.close();
    }
  });

  it('a failing call: status ERROR on both sides, the error code as rpc.status_code and error.type', async () => {
    expect(await errorOf(client.send('trace.fail', null))).toEqual({ status: 'error', message: 'nope' });
    const { c, s } = await pair();
    expectLinked(c, s);
    for (const span of [c, s]) {
      expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'nope' });
      expect(span.attributes).toMatchObject({ 'rpc.status_code': 'APPLICATION_ERROR', 'error.type': 'APPLICATION_ERROR' });
    }
  });

  it('a call past its deadline: DEADLINE_EXCEEDED (an error) on the client; the server saw its deadline or the caller give up', async () => {
    const err = await errorOf(client.send('trace.slow', new WsMsgpackRecordBuilder(null).setTimeout(50).build()));
    expect((err as WsMsgpackError).code).toBe(WsMsgpackErrorCode.DEADLINE_EXCEEDED);
    const { c, s } = await pair();
    expect(c.status.code).toBe(SpanStatusCode.ERROR);
    expect(c.attributes['error.type']).toBe('DEADLINE_EXCEEDED');
    // The caller enforces its deadline itself and cancels: that CANCEL can reach the server before
    // the server's own timer for the same deadline (which started when the request arrived).
    if (s.attributes['rpc.status_code'] === 'DEADLINE_EXCEEDED') {
      expect(s.status.code).toBe(SpanStatusCode.ERROR);
      expect(s.attributes['error.type']).toBe('DEADLINE_EXCEEDED');
    } else {
      expect(s.attributes['rpc.status_code']).toBe('CANCELLED');
      expect(s.status.code).toBe(SpanStatusCode.UNSET);
    }
  });

  it('unsubscribing ends both spans as CANCELLED, which is no error', async () => {
    expect(await firstValueFrom(client.send('trace.endless', null))).toBe(1);
    const { c, s } = await pair();
    expectLinked(c, s);
    for (const span of [c, s]) {
      expect(span.attributes['rpc.status_code']).toBe('CANCELLED');
      expect(span.status.code).toBe(SpanStatusCode.UNSET);
    }
  });

  it('breaking out of iterate() ends the client span as CANCELLED', async () => {
    for await (const n of client.iterate<number>('trace.endless', null)) {
      expect(n).toBe(1);
      break;
    }
    const { c, s } = await pair();
    expect([c.attributes['rpc.status_code'], s.attributes['rpc.status_code']]).toEqual(['CANCELLED', 'CANCELLED']);
  });

  it("a parent span of the caller's: the client span is its child, and the trace goes on to the server", async () => {
    const tracer = trace.getTracer('app');
    const parent: Span = tracer.startSpan('app.request');
    await context.with(trace.setSpan(context.active(), parent), () => first(client.send('trace.unary', 1)));
    parent.end();
    const { c, s } = await pair();
    expect(c.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
    expect(c.spanContext().traceId).toBe(parent.spanContext().traceId);
    expectLinked(c, s);
  });

  it("merges the trace headers with the caller's; a traceparent set by hand wins", async () => {
    const mine = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const rec = new WsMsgpackRecordBuilder(null).setHeaders({ tenant: 't1', traceparent: mine }).build();
    const headers = await first(client.send<Record<string, unknown>>('trace.echo-headers', rec));
    expect(headers).toEqual({ tenant: 't1', traceparent: mine });
    const { s } = await pair();
    expect(s.spanContext().traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(s.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
  });

  it('tracing never fails a call or an event: a propagator or tracer that throws leaves them untraced', async () => {
    const boom = {
      inject: () => {
        throw new Error('inject boom');
      },
      extract: () => {
        throw new Error('extract boom');
      },
      fields: () => [],
    };
    propagation.disable();
    propagation.setGlobalPropagator(boom);
    try {
      expect(await first(client.send<number>('trace.unary', 4))).toBe(8);
      const items: number[] = [];
      for await (const v of client.iterate<number>('trace.stream', 3)) items.push(v);
      expect(items.length).toBeGreaterThan(0);
      events.length = 0;
      await firstValueFrom(client.emit('trace.evt', { a: 2 }), { defaultValue: undefined });
      await until(() => events.length === 1, 5000, 'event handled despite the throwing propagator');
    } finally {
      propagation.disable();
      propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    }
    // A tracer that throws on startSpan (both sides use the global provider).
    const throwing = {
      getTracer: () => ({
        startSpan: () => {
          throw new Error('tracer boom');
        },
        startActiveSpan: () => {
          throw new Error('tracer boom');
        },
      }),
    };
    configureWsMsgpackTracing({ tracerProvider: throwing as never });
    try {
      expect(await first(client.send<number>('trace.unary', 5))).toBe(10);
    } finally {
      configureWsMsgpackTracing();
    }
  });

  it('a call without trace context starts a new trace on the server', async () => {
    // No propagator for this call: nothing goes in the headers, and the server extracts nothing.
    propagation.disable();
    try {
      const parent = trace.getTracer('app').startSpan('app.request');
      const headers = await context.with(trace.setSpan(ROOT_CONTEXT, parent), () => first(client.send('trace.echo-headers', null)));
      parent.end();
      expect(headers).toEqual({});
    } finally {
      propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    }
    const { c, s } = await pair();
    expect(s.parentSpanContext).toBeUndefined();
    expect(s.spanContext().traceId).not.toBe(c.spanContext().traceId);
  });

  it('events: a PRODUCER span on emit and a CONSUMER span around the handler, one trace', async () => {
    events.length = 0;
    await firstValueFrom(client.emit('trace.evt', { a: 1 }), { defaultValue: undefined });
    await until(() => events.length === 1 && ours(SpanKind.CONSUMER).length === 1, 5000, 'event handled');
    const { c: p, s: k } = await pair(SpanKind.PRODUCER, SpanKind.CONSUMER);
    expectLinked(p, k);
    expect(p.name).toBe('emit trace.evt');
    expect(k.name).toBe('process trace.evt');
    expect(p.attributes).toMatchObject({ 'messaging.system': 'nestjs-ws-msgpack', 'messaging.destination.name': 'trace.evt', 'messaging.operation.type': 'send' });
    expect(k.attributes).toMatchObject({ 'messaging.operation.type': 'process' });
    expect(events[0]).toEqual({ traceId: k.spanContext().traceId, spanId: k.spanContext().spanId });
  });

  it('configureWsMsgpackTracing({ enabled: false }): no spans, no trace headers', async () => {
    configureWsMsgpackTracing({ enabled: false });
    try {
      const parent = trace.getTracer('app').startSpan('app.request');
      const headers = await context.with(trace.setSpan(ROOT_CONTEXT, parent), () => first(client.send('trace.echo-headers', null)));
      parent.end();
      expect(headers).toEqual({});
      await new Promise((r) => setTimeout(r, 20));
      expect(ours()).toHaveLength(0);
    } finally {
      configureWsMsgpackTracing();
    }
  });

  it('configureWsMsgpackTracing({ tracerProvider }): spans go to that provider', async () => {
    const other = new InMemorySpanExporter();
    const otherProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(other)] });
    configureWsMsgpackTracing({ tracerProvider: otherProvider });
    try {
      expect(await first(client.send('trace.unary', 2))).toBe(4);
      await until(() => other.getFinishedSpans().length === 2, 5000, 'spans in the other provider');
      expect(
        other
          .getFinishedSpans()
          .map((s) => s.kind)
          .sort(),
      ).toEqual([SpanKind.SERVER, SpanKind.CLIENT].sort());
      expect(ours()).toHaveLength(0);
    } finally {
      configureWsMsgpackTracing();
      await otherProvider.shutdown();
    }
  });

  it('rejects options of the wrong type', () => {
    expect(() => configureWsMsgpackTracing({ enabled: 'yes' as unknown as boolean })).toThrow(TypeError);
    expect(() => configureWsMsgpackTracing({ tracerProvider: {} as never })).toThrow(/getTracer/);
    expect(() => configureWsMsgpackTracing({ api: {} as never })).toThrow(/@opentelemetry\/api/);
  });

  it('many concurrent calls keep their spans apart', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => first(client.send('trace.unary', i))));
    expect(results).toEqual(Array.from({ length: 20 }, (_, i) => i * 2));
    await until(() => ours(SpanKind.SERVER).length === 20, 5000, '20 server spans');
    const clients = new Map(ours(SpanKind.CLIENT).map((c) => [c.spanContext().spanId, c]));
    expect(clients.size).toBe(20);
    for (const s of ours(SpanKind.SERVER)) {
      const c = clients.get(s.parentSpanContext!.spanId);
      expect(c?.spanContext().traceId).toBe(s.spanContext().traceId);
    }
    // Each call is its own trace (no span was active).
    expect(new Set(ours(SpanKind.CLIENT).map((c) => c.spanContext().traceId)).size).toBe(20);
  });
});
